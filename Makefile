# The two commands: `make dev` (build and serve locally) and `make test` (everything CI runs).
# Toolchain pieces that take minutes to compile are installed once into $(TOOLS) and reused.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
PORT ?= 8787
TOOLS ?= $(HOME)/.cache/p2pcf-rs
WASM_BINDGEN_VERSION := $(shell sed -n '/^name = "wasm-bindgen"$$/{n;s/version = "\(.*\)"/\1/p;}' Cargo.lock)
WORKER_BUILD_VERSION := $(shell sed -n '/^name = "worker"$$/{n;s/version = "\(.*\)"/\1/p;}' Cargo.lock)
WASM_BINDGEN := $(TOOLS)/wasm-bindgen-$(WASM_BINDGEN_VERSION)/bin/wasm-bindgen
WORKER_BUILD := $(TOOLS)/worker-build-$(WORKER_BUILD_VERSION)/bin/worker-build
NODE_BIN := node_modules/.bin
CHROMIUM ?= /usr/bin/chromium
FIREFOX ?= /usr/bin/firefox-esr
export CLOUDFLARE_CF_FETCH_ENABLED := false
export WRANGLER_SEND_METRICS := false

.PHONY: dev test unit e2e build client tools bench deploy clean nat-test

## dev: build, then serve the worker with a local R2 bucket on http://127.0.0.1:$(PORT)
dev: build
	$(NODE_BIN)/wrangler dev --ip 127.0.0.1 --port $(PORT) --persist-to .wrangler/state --show-interactive-dev-session=false

## test: native unit tests, the wasm build, the end-to-end suites against ours and the reference,
## then the NAT lab (root: it fails, saying so, where network namespaces are not available)
test: unit build e2e nat-test

unit: node_modules/.installed
	cargo test --quiet
	node --test client-js/test/

e2e: build $(CHROMIUM) $(FIREFOX)
	node tests/run.mjs

# The browser suites drive Debian's Chromium (playwright-core cannot download a browser here).
$(CHROMIUM):
	$$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get update -qq
	$$( [ "$$(id -u)" = 0 ] || echo sudo ) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium

# ... and Debian's Firefox ESR (puppeteer-core, over WebDriver BiDi) for the Firefox ↔ Chromium suite.
$(FIREFOX):
	$$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get update -qq
	$$( [ "$$(id -u)" = 0 ] || echo sudo ) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends firefox-esr

## build: the worker bundle in build/ (wasm + JS shim) and the demo's static assets, with the pinned toolchain
build: tools
	WASM_BINDGEN_BIN=$(WASM_BINDGEN) WASM_OPT_BIN=$(CURDIR)/$(NODE_BIN)/wasm-opt ESBUILD_BIN=$(CURDIR)/$(NODE_BIN)/esbuild \
		$(WORKER_BUILD) --release
	rm -rf build/assets && mkdir -p build/assets
	cp demo/demo.html demo/demo.css demo/demo.js build/assets/
	$(MAKE) --no-print-directory client
	cp build/client/p2pcf.min.js build/assets/p2pcf.js  # the demo runs on our client
	mkdir -p build/assets/demo && cp demo/conference.html build/assets/demo/conference.html
	cp build/client/conference.min.js build/assets/conference.js
	@wasm=build/index_bg.wasm; echo "wasm: $$(wc -c < $$wasm) bytes raw, $$(gzip -9c $$wasm | wc -c) bytes gzip"

## client: client-js bundles (ESM minified for browsers, CJS for require()) and their sizes
# Minified as terser's mangle-props would: underscore-private property names are shortened too
# (not _p2pcfContextId, which a reloaded page reads back from history.state).
MINIFY = --minify --mangle-props=^_ --reserve-props=^_p2pcf
client: node_modules/.installed
	$(NODE_BIN)/esbuild client-js/src/index.js --bundle --format=esm $(MINIFY) --log-level=warning --outfile=build/client/p2pcf.min.js
	$(NODE_BIN)/esbuild client-js/src/index.cjs --bundle --format=cjs --platform=neutral --log-level=warning --outfile=client-js/dist/p2pcf.cjs
	$(NODE_BIN)/esbuild client-js/src/conference/index.js --bundle --format=esm $(MINIFY) --log-level=warning --outfile=build/client/conference.min.js
	@js=build/client/p2pcf.min.js; echo "client-js: $$(wc -c < $$js) bytes min, $$(gzip -9c $$js | wc -c) bytes min+gzip"
	@js=build/client/conference.min.js; echo "client-js/conference: $$(wc -c < $$js) bytes min, $$(gzip -9c $$js | wc -c) bytes min+gzip"

tools: $(WASM_BINDGEN) $(WORKER_BUILD) node_modules/.installed
	@rustup target list --installed | grep -q '^wasm32-unknown-unknown$$' || rustup target add wasm32-unknown-unknown

# Compiled once (~10 minutes each), then reused from $(TOOLS) by every checkout.
$(WASM_BINDGEN):
	cargo install --root $(TOOLS)/wasm-bindgen-$(WASM_BINDGEN_VERSION) wasm-bindgen-cli --version $(WASM_BINDGEN_VERSION)

$(WORKER_BUILD):
	cargo install --root $(TOOLS)/worker-build-$(WORKER_BUILD_VERSION) worker-build --version $(WORKER_BUILD_VERSION)

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

## nat-test: the NAT lab (root; network namespaces, nftables, coturn): p2pcf-peer pairs across NAT kinds
nat-test: build
	@command -v nft >/dev/null && command -v turnserver >/dev/null || { \
		$$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get update -qq; \
		$$( [ "$$(id -u)" = 0 ] || echo sudo ) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nftables coturn; }
	node tests/nat/lab.mjs

## bench: cost and speed, ours against the reference, in one run (writes BENCHMARKS.md)
bench: build
	node tests/bench/run.mjs

## deploy: deploy to your Cloudflare account (see INSTALL.md)
deploy: build
	$(NODE_BIN)/wrangler deploy

clean:
	rm -rf build target .wrangler
