"""`medprep verify` checks index.json with a hand port of Schemas/shard-index.schema.json
(IndexSchema.swift). This holds the port against the schema itself: walking the schema over a
real index, every required key is dropped and an unknown key is added to every closed object,
one at a time. jsonschema must reject each mutation (the premise), and verify must reject it
too, naming index.json, without touching the shards."""
import json
import shutil

import pytest
from jsonschema import Draft202012Validator

from conftest import ROOT

SCHEMA = json.loads((ROOT / "Schemas" / "shard-index.schema.json").read_text())


def resolve(node):
    while "$ref" in node:
        name = node["$ref"].split("/")[-1]
        node = {**SCHEMA["$defs"][name], **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def object_nodes(schema, instance, path=()):
    """(path, schema node, instance object) for every schema object node present in the index."""
    schema = resolve(schema)
    if isinstance(instance, dict) and "properties" in schema:
        yield path, schema, instance
        for key, sub in schema["properties"].items():
            if key in instance:
                yield from object_nodes(sub, instance[key], path + (key,))
    elif isinstance(instance, list) and instance and "items" in schema:
        yield from object_nodes(schema["items"], instance[0], path + (0,))


def mutations(index):
    for path, node, obj in object_nodes(SCHEMA, index):
        for key in node.get("required", []):
            if key in obj:
                yield f"drop {'/'.join(map(str, path + (key,)))}", path, ("drop", key)
        if node.get("additionalProperties") is False:
            yield f"add {'/'.join(map(str, path + ('zz_unknown',)))}", path, ("add", "zz_unknown")


def apply(index, path, change):
    doc = json.loads(json.dumps(index))
    obj = doc
    for p in path:
        obj = obj[p]
    kind, key = change
    if kind == "drop":
        del obj[key]
    else:
        obj[key] = 1
    return doc


@pytest.fixture(scope="module")
def output(tmp_path_factory, medprep):
    d = tmp_path_factory.mktemp("schema-port")
    assert medprep("synth", d / "src", "--cases3d", 2, "--cases2d", 2, "--size3d", "16,16,4").returncode == 0
    out = d / "out"
    r = medprep("convert", d / "src" / "synth3d", "--out", out, "--skip-validation")
    assert r.returncode == 0, r.stderr
    assert medprep("verify", out).returncode == 0
    return out


def test_verify_rejects_everything_the_schema_rejects(output, medprep, tmp_path):
    index = json.loads((output / "index.json").read_text())
    validator = Draft202012Validator(SCHEMA)
    assert not list(validator.iter_errors(index))
    cases = list(mutations(index))
    assert len(cases) > 40, len(cases)        # the walk reaches the nested objects too
    missed = []
    for name, path, change in cases:
        doc = apply(index, path, change)
        assert list(validator.iter_errors(doc)), f"{name}: the schema accepts it (test premise)"
        work = tmp_path / "o"
        if work.exists():
            shutil.rmtree(work)
        shutil.copytree(output, work)
        (work / "index.json").write_text(json.dumps(doc, indent=1))
        r = medprep("verify", work, "--json")
        report = json.loads(r.stdout)
        if r.returncode == 0 or not any(p["file"].endswith("index.json") for p in report["problems"]):
            missed.append(name)
    assert not missed, f"verify accepts what the schema rejects: {missed}"
