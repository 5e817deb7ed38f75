# The project's checks, as .ci/run runs them: make test lint type doc wheel floors
.PHONY: test lint format type doc build wheel floors check

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

doc:
	python -m sphinx -W --keep-going -b html docs docs/_build/html

build:
	rm -rf dist
	python -m build --outdir dist .
	twine check --strict dist/*

wheel: build
	bash .ci/wheel

floors:
	bash .ci/floors

check: test lint type doc wheel floors
