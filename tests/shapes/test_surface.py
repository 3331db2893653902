"""The public names of `pixelgate.shapes`, guarded: a change here is a change of interface."""

from __future__ import annotations

import pixelgate.shapes as shapes

EXPECTED = {
    "COLOURS", "HELD_OUT_PAIRS", "PALETTE", "RELATIONS", "SHAPES", "SIZES",
    "CaptionError", "Claim", "EvaluationPrompt", "Phrase", "Prompt", "Reading", "Relation",
    "Scene", "Seen", "Shape", "Size", "Thing", "Verdict",
    "describe", "evaluation_keys", "evaluation_prompts", "full_prompt", "judge",
    "parse_caption", "read_image", "relation", "render", "sample_scene", "scene_key", "score",
    "training_example", "vocabulary",
}  # fmt: skip


def test_exported_names() -> None:
    assert set(shapes.__all__) == EXPECTED
    assert all(hasattr(shapes, name) for name in shapes.__all__)
