"""Inputs the long fuzzing runs found (docs/fuzzing.md), run through the medprep binary: each
must be a clean error naming the file and the problem, never a crash."""
import pytest

from test_dataset_fixes import volume_dataset


# manifest-yaml, 2026-12-04: Yams reads a plain scalar with a colon as a YAML 1.1
# base-60 integer and traps on overflow (SIGILL, exit -4) when the field is an integer. The
# found input, minimised by hand to the field that matters, and the same in other integer fields.
@pytest.mark.parametrize("line", [
    "folds: {k: 5, seed: 123333333111111111111:1111eomeyr3;t:33333333345}",  # the fuzzer's input
    "folds: {k: 1:1:1:1:1:1:1:1:1:1:1:1}",                                    # 60^11 overflows Int64
    "shard_size: 99999999999:99999999999",
    "folds: {k: 1:30}",                                                       # in range, still base 60
    # manifest-yaml, second run: Yams takes any plain scalar holding a colon as base 60 and keeps
    # the parts that read as numbers; the fuzzer's scalar began with bytes that are not digits.
    "folds: {k: 5, seed: \ufffd\ufffd^0:4::::2:1:1:1:1:1:1:1:1:1:1}",
    "shard_size: x:5",                                                        # silently 5 before
])
def test_base_sixty_integers_are_refused(tmp_path, medprep, line):
    ds, _ = volume_dataset(tmp_path / "ds")
    text = (ds / "manifest.yaml").read_text()
    text = "\n".join(ln for ln in text.splitlines() if not ln.startswith(("folds:", "shard_size:"))) + "\n" + line + "\n"
    (ds / "manifest.yaml").write_text(text)
    for cmd in (["validate", ds], ["convert", ds, "--out", tmp_path / "out"]):
        r = medprep(*cmd)
        assert r.returncode > 0, (r.returncode, r.stderr)  # an error exit, not a signal (negative)
        assert "manifest.yaml" in r.stderr and "base-60 number" in r.stderr and "line " in r.stderr, r.stderr
    assert not (tmp_path / "out").exists()


def test_quoted_colon_text_is_text(tmp_path, medprep):
    ds, _ = volume_dataset(tmp_path / "ds")
    text = (ds / "manifest.yaml").read_text()
    name = next(ln for ln in text.splitlines() if ln.startswith("name:"))
    (ds / "manifest.yaml").write_text(text.replace(name, 'name: "10:1 mix"'))
    r = medprep("validate", ds)
    assert r.returncode == 0 and "base-60" not in r.stderr, r.stderr


# Found while checking the YAML reader after the fuzz finding above: Yams parses recursively, and
# `name: [[[[...` 5,000 deep overflowed the main thread's stack (SIGSEGV). Flow and block nesting
# within the bound parse on a large-stack thread; past it the file is refused unparsed.
@pytest.mark.parametrize("body,refused", [
    ("name: " + "[" * 5000 + "]" * 5000, False),
    ("name: x\nfolds:\n" + "- " * 8000 + "x", False),
    ("name: x\nlabels:\n" + "".join(" " * i + "a:\n" for i in range(1, 1500)), False),
    ("name: " + "[" * 20000, True),
])
def test_deep_nesting_is_an_error_not_a_crash(tmp_path, medprep, body, refused):
    ds, _ = volume_dataset(tmp_path / "ds")
    (ds / "manifest.yaml").write_text(body + "\n")
    r = medprep("validate", ds)
    assert r.returncode > 0, (r.returncode, r.stderr[-500:])
    assert "manifest.yaml" in r.stderr and "crashed" not in r.stderr
    assert ("nested too deeply" in r.stderr) == refused, r.stderr[-300:]
