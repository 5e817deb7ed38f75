# The project's checks, as .ci/run runs them: make test lint type wheel floors
.PHONY: test lint format type build wheel floors check

test:
	pytest -q tests

lint:
	ruff check .
	ruff format --check .

format:
	ruff format .
	ruff check --fix .

type:
	mypy sb3_mlsh

build:
	rm -rf dist
	python -m build --outdir dist .
	twine check --strict dist/*

wheel: build
	bash .ci/wheel

floors:
	bash .ci/floors

check: test lint type wheel floors
