"""The README's "build your own model" example runs as written."""

import re
from pathlib import Path

import torch

README = Path(__file__).resolve().parent.parent / "README.md"


def _example_code() -> str:
    text = README.read_text(encoding="utf-8")
    match = re.search(r"<!-- example: build-your-own -->\n```python\n(.*?)```", text, re.S)
    assert match, "README lost its build-your-own example block"
    return match.group(1)


def test_readme_example_runs(capsys):
    torch.manual_seed(0)
    namespace: dict = {}
    exec(compile(_example_code(), str(README), "exec"), namespace)
    assert torch.isfinite(namespace["loss"])
    # the backward pass reached every part of the model
    for name in ("encoder", "decoder", "ctc"):
        grads = [p.grad for p in namespace[name].parameters() if p.requires_grad]
        assert any(g is not None and g.abs().sum() > 0 for g in grads), name
    nbest = namespace["nbest"]
    assert len(nbest) == 4 and all(len(h) == 1 for h in nbest)
    for hyps in nbest:
        assert 0 < len(hyps[0].tokens) <= 10 and all(0 <= t < 32 for t in hyps[0].tokens)
    assert capsys.readouterr().out.startswith("[[")
