.DEFAULT_GOAL := help
VENV := .venv
PYTHON := $(VENV)/bin/python
PIP_VERSION := 26.3
IMAGE ?= ghcr.io/dbos-queue-worker/dbos-queue-worker
VERSION ?= 0.2.0
# images-local: the Debian base made here, and the CA bundle pip trusts inside the build.
# The local base, tagged by its recipe: a changed docker/local-base.sh makes a new one.
BASE_IMAGE ?= localhost/dbos-queue-worker-base:bookworm-$(shell sha256sum docker/local-base.sh | cut -c1-12)
PIP_CERT ?= /etc/ssl/certs/ca-certificates.crt
TIME_SCALE ?= 1

.PHONY: help  ## list the targets
help:
	@grep -E '^\.PHONY: [a-z-]+ +## ' $(MAKEFILE_LIST) | sed -E 's/^\.PHONY: ([a-z-]+) +## /  make \1\t/'

$(VENV)/installed.stamp: pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip==$(PIP_VERSION)
	$(PYTHON) -m pip install --quiet --constraint constraints.txt --editable '.[test]'
	touch $@

.PHONY: install  ## create .venv (if missing) and install the project with its test tools
install: $(VENV)/installed.stamp

.PHONY: run  ## run the worker and the API on the embedded SQLite database (Ctrl-C stops both)
run: install
	$(PYTHON) -m services

.PHONY: run-api  ## run only the API (python -m services.api)
run-api: install
	$(PYTHON) -m services.api

.PHONY: run-worker  ## run only the worker (python -m services.worker)
run-worker: install
	$(PYTHON) -m services.worker

.PHONY: test  ## run the whole test suite, on SQLite and on PostgreSQL
test: install
	$(PYTHON) -m pytest

.PHONY: tools  ## install the Debian packages whose programs the full suite drives (listed in tests/tools.sh)
tools:
	bash tests/tools.sh

.PHONY: images  ## build the api and worker images (needs a Docker engine)
images:
	docker build --file docker/Dockerfile --target api --build-arg VERSION=$(VERSION) $(PIP_CERT_SECRET) --tag $(IMAGE)-api:$(VERSION) .
	docker build --file docker/Dockerfile --target worker --build-arg VERSION=$(VERSION) $(PIP_CERT_SECRET) --tag $(IMAGE)-worker:$(VERSION) .

.PHONY: base-local  ## make the Debian base image with debootstrap (as root; reused once made, REBUILD=1 remakes it)
base-local:
	bash docker/local-base.sh $(BASE_IMAGE)

# Local builds are named localhost/... unless IMAGE says otherwise: built on Debian's Python,
# not the pinned base, they must not be pushed as the release by mistake.
LOCAL_IMAGE ?= localhost/dbos-queue-worker
# pip's CA bundle, handed to the build as a secret where the file exists (never in a layer).
PIP_CERT_SECRET = $(if $(wildcard $(PIP_CERT)),--secret id=pip_cert$(comma)src=$(PIP_CERT))
comma := ,

.PHONY: images-local  ## build the api and worker images without Docker: podman on the local Debian base
images-local: base-local
	podman build --isolation chroot --file docker/Dockerfile --target api --build-arg PYTHON_IMAGE=$(BASE_IMAGE) --build-arg VERSION=$(VERSION) $(PIP_CERT_SECRET) --tag $(LOCAL_IMAGE)-api:$(VERSION) .
	podman build --isolation chroot --file docker/Dockerfile --target worker --build-arg PYTHON_IMAGE=$(BASE_IMAGE) --build-arg VERSION=$(VERSION) $(PIP_CERT_SECRET) --tag $(LOCAL_IMAGE)-worker:$(VERSION) .

.PHONY: bench  ## the project beside its references (benchmarks/results/), then reads at 1M+100k workflows
bench: install
	$(PYTHON) -m benchmarks
	$(PYTHON) -m benchmarks.scale

.PHONY: rehearse  ## rehearse the chart's autoscaling on real workers (TIME_SCALE=10 for a faster run)
rehearse: install
	$(PYTHON) -m benchmarks.rehearsal all --time-scale $(TIME_SCALE)

.PHONY: audit  ## the pinned dependencies against PyPI's vulnerability advisories (pip-audit; AUDIT_STRICT=1 also fails when they can't be read)
audit: install
	$(PYTHON) -m tests.support.dependency_audit

.PHONY: lint  ## ruff (lint and format check) and mypy --strict
lint: install
	$(VENV)/bin/ruff check services tests benchmarks
	$(VENV)/bin/ruff format --check services tests benchmarks
	$(VENV)/bin/mypy

.PHONY: format  ## rewrite code in the house format
format: install
	$(VENV)/bin/ruff format services tests benchmarks
	$(VENV)/bin/ruff check --fix services tests benchmarks

.PHONY: lock  ## re-pin constraints.txt to what .venv has installed
lock: install
	$(PYTHON) -m pip freeze --exclude-editable --local > constraints.txt.new
	mv constraints.txt.new constraints.txt
