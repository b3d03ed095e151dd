# Podium: `make run` and `make test` set up everything they need on a fresh Debian 12 machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMPS := .make

# Debian packages, as PACKAGE[:a shell test that also counts as present].
SYSTEM_PACKAGES := \
	python3:'command -v $(PYTHON)' \
	python3-venv:'$(PYTHON) -c "import ensurepip, venv"' \
	nodejs:'command -v node' \
	npm:'command -v npm' \
	ca-certificates \
	nginx:'command -v nginx' \
	chromium:'command -v chromium' \
	xva-img \
	postgresql

# What `make xva` and `make image-test` need besides the above.
IMAGE_PACKAGES := packer qemu-system-x86 qemu-utils mmdebstrap fdisk e2fsprogs openssh-client
# The public keys the image trusts for updates (make_bundle makes a development key and this keyring).
KEYRING ?= build/keys/keyring.json

.PHONY: help setup run test lint format bench bundle xva image-test clean

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMPS)/system: scripts/ensure-system-packages Makefile
	@mkdir -p $(STAMPS)
	@scripts/ensure-system-packages $(SYSTEM_PACKAGES)
	@touch $@

$(BIN)/python: | $(STAMPS)/system
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMPS)/venv: pyproject.toml $(BIN)/python $(STAMPS)/system
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev]'
	@touch $@

$(STAMPS)/node: tests/node/package.json tests/node/package-lock.json $(STAMPS)/system
	cd tests/node && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# The UI's front-end packages (noVNC, uPlot), copied as their ES modules and licences into the package,
# and its linter (eslint, for make lint: not copied). Another eslint may not read the old one's cache: removed.
WEB_NPM := server/web-vendor
WEB_VENDOR := server/podium/web/static/vendor
$(STAMPS)/web: $(WEB_NPM)/package.json $(WEB_NPM)/package-lock.json $(STAMPS)/system
	cd $(WEB_NPM) && npm ci --no-audit --no-fund --loglevel=error
	rm -f $(STAMPS)/eslint-cache
	rm -rf $(WEB_VENDOR) && mkdir -p $(WEB_VENDOR)/novnc $(WEB_VENDOR)/uplot
	cp -r $(WEB_NPM)/node_modules/@novnc/novnc/{core,vendor,LICENSE.txt} $(WEB_VENDOR)/novnc/
	cp $(WEB_NPM)/node_modules/uplot/{dist/uPlot.esm.js,dist/uPlot.min.css,LICENSE} $(WEB_VENDOR)/uplot/
	@touch $@

setup: $(STAMPS)/venv $(STAMPS)/node $(STAMPS)/web ## Install system packages, the venv and test tools (done by run and test)

run: $(STAMPS)/venv $(STAMPS)/web ## Run Podium on its embedded defaults (the bundled simulated pool)
	@$(BIN)/python scripts/run_dev.py

test: setup ## Run the test suite (unit, integration, e2e)
	$(BIN)/python -m pytest -q

# eslint is one of the UI's npm packages (a devDependency); its cache keeps a run without changes short.
ESLINT := $(WEB_NPM)/node_modules/.bin/eslint --config $(WEB_NPM)/eslint.config.mjs --cache --cache-location $(STAMPS)/eslint-cache

lint: $(STAMPS)/venv $(STAMPS)/web ## ruff check and format --check, mypy (server, appliance, scripts, image), eslint (the UI)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(ESLINT) server/podium/web/static tests/node $(WEB_NPM)/eslint.config.mjs

format: $(STAMPS)/venv ## Reformat the code with ruff
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: setup ## Run the benchmarks in tests/bench and print their figures
	@set -e; for b in tests/bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b; done

bundle: $(STAMPS)/venv $(STAMPS)/web ## Build a signed update bundle of this tree in build/bundles (BUNDLE_ARGS="--version 0.2.0 ...")
	$(BIN)/python scripts/make_bundle.py $(BUNDLE_ARGS)

$(STAMPS)/image-system: scripts/ensure-system-packages Makefile | $(STAMPS)/system
	@scripts/ensure-system-packages $(IMAGE_PACKAGES)
	@touch $@

$(STAMPS)/image-venv: pyproject.toml $(STAMPS)/venv
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev,image]'
	@touch $@

xva: $(STAMPS)/image-system $(STAMPS)/image-venv $(STAMPS)/web ## Build the appliance image build/podium-appliance-<version>.xva (Packer, Ansible, qemu)
	@mkdir -p build && $(BIN)/python scripts/make_bundle.py $(BUNDLE_ARGS) > build/.xva-bundle
	@$(BIN)/python image/build.py --bundle "$$(cat build/.xva-bundle)" --keyring $(KEYRING) $(XVA_ARGS)

image-test: xva ## Boot the appliance image in qemu and test it over SSH (testinfra)
	$(BIN)/python -m pytest -q -p no:cacheprovider -p no:randomly tests/image

clean: ## Remove the venv, node modules and build stamps
	rm -rf $(VENV) $(STAMPS) tests/node/node_modules $(WEB_NPM)/node_modules $(WEB_VENDOR) build *.egg-info server/*.egg-info
