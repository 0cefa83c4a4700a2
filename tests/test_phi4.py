"""The phi4 engine on CPU with a tiny random-weight Phi-4-multimodal (same classes as the real model),
loaded through the engine's own loading code. Random weights give random text: these tests assert the
mechanics (routing, batching, prompts, provenance, the length-cap flag), never the words."""

from __future__ import annotations

import io
import shutil

import numpy as np
import pytest
from conftest import corpus
from phi4_tiny import tiny_engine_config
from PIL import Image
from unitok.connectors.output import read_table

pytest.importorskip("torch")
pytest.importorskip("transformers")

from conftest import routed
from unitok.actors.phi4 import PROMPTS, Phi4Engine, chat_prompt  # noqa: E402
from unitok.actors.routing import PDF_TEXT, PHI4
from unitok.pipeline.core.config import parse_config  # noqa: E402
from unitok.pipeline.core.records import Segment  # noqa: E402
from unitok.pipeline.job import run_job  # noqa: E402


@pytest.fixture(scope="module")
def engine(tiny_model):
    eng = Phi4Engine(str(tiny_model), device="cpu", max_new_tokens=6, max_crops=2, local_files_only=True)
    # Random weights may emit an end token at any step; forbid them so every generation hits the cap
    # and the flag must appear.
    with eng.torch.no_grad():
        for t in {eng.processor.tokenizer.eos_token_id, eng.processor.tokenizer.pad_token_id}:
            eng.model.lm_head.weight[t] = 0
            if eng.model.lm_head.bias is not None:
                eng.model.lm_head.bias[t] = -1e4
    return eng


def png(path) -> bytes:
    buf = io.BytesIO()
    Image.open(path).convert("RGB").save(buf, format="PNG")
    return buf.getvalue()


def seg(kind: str, **kw) -> Segment:
    return Segment("d", "file:///x", "v", 1, "image/png", "image", 0, kind, route=PHI4, **kw)


def test_loads_on_cpu_in_float32_with_sdpa(engine, tiny_model):
    assert engine.device == "cpu" and str(engine.dtype) == "torch.float32"
    assert engine.attn_implementation == "sdpa"
    assert engine.model_id == str(tiny_model)
    assert engine.processor.image_processor.dynamic_hd == 2  # crops capped from the config


def test_prompts_follow_the_model_card_chat_format():
    assert chat_prompt("Transcribe the audio clip into text.", "<|audio|>") == (
        "<|user|><|audio|>Transcribe the audio clip into text.<|end|><|assistant|>"
    )
    assert PROMPTS["audio_window"].text == "Transcribe the audio clip into text."
    assert len({p.id for p in PROMPTS.values()}) == len(PROMPTS)


def test_image_page_and_audio_generate_with_their_prompt_ids_and_flag_the_cap(engine):
    image = seg("image", image_png=png(corpus("image/DA-1p.png")))
    page = seg("page", image_png=png(corpus("image/layout-parser-paper-fast.jpg")))
    t = np.arange(2 * 16000) / 16000
    audio = seg("audio_window", audio_f32=(0.1 * np.sin(2 * np.pi * 440 * t)).astype(np.float32).tobytes())
    out = engine([image, page, audio])
    assert len(out) == 3
    for o in out:
        assert isinstance(o.markdown, str) and o.model_id == engine.model_id
        assert o.warnings == ["generation stopped at max_new_tokens=6: the text may be cut"]
    assert [o.prompt_id for o in out] == [
        "phi4.image.v1",
        "phi4.page.v1",
        "phi4.audio.v1",
    ]


def test_batches_hold_one_shape_each_so_nothing_is_padded_and_respect_the_budget(engine):
    small = png(corpus("image/bmp_24.bmp"))
    big = png(corpus("image/table-multi-row-column-cells.png"))
    audio = np.zeros(16000, dtype=np.float32).tobytes()
    segments = [
        seg("image", image_png=big), seg("audio_window", audio_f32=audio), seg("image", image_png=small),
        seg("page", image_png=big), seg("audio_window", audio_f32=audio), seg("image", image_png=big),
        seg("image", image_png=big),
    ]  # fmt: skip
    items = [engine._item(i, s) for i, s in enumerate(segments)]
    engine.token_budget = 2 * (items[0].expected_tokens + engine.max_new_tokens)
    try:
        batches = engine._batches(items)
    finally:
        engine.token_budget = 32768
    # The three big images are one shape, two to a batch under this budget; the two clips are one.
    assert sorted([i.index for i in b] for b in batches) == [[0, 5], [1, 4], [2], [3], [6]]
    for batch in batches:
        assert len({i.shape for i in batch}) == 1


def test_a_segments_output_does_not_depend_on_what_shares_its_call(engine):
    """What the staged Ray plan relies on: a page batched with pages of other objects reads as it does
    alone."""
    page = png(corpus("image/table-multi-row-column-cells.png"))
    other = png(corpus("image/bmp_24.bmp"))
    audio = (np.sin(np.arange(16000) / 7.0) * 0.3).astype(np.float32).tobytes()
    alone = engine([seg("page", image_png=page)])[0].markdown
    crowd = engine(
        [seg("page", image_png=page)] * 3
        + [seg("image", image_png=other), seg("audio_window", audio_f32=audio)]
    )
    assert [o.markdown for o in crowd[:3]] == [alone] * 3
    assert engine([seg("audio_window", audio_f32=audio)])[0].markdown == crowd[4].markdown


def test_audio_over_40_seconds_is_refused(engine):
    too_long = seg("audio_window", audio_f32=np.zeros(41 * 16000, dtype=np.float32).tobytes())
    with pytest.raises(ValueError, match="at most 40 s"):
        engine([too_long])


def test_pipeline_with_phi4_routes_scans_and_images_to_the_model(ray_local, tiny_model, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for rel in ("pdf/fake-memo.pdf", "pdf/single_table.pdf", "image/DA-1p.png"):
        shutil.copy(corpus(rel), src)
    cfg = parse_config(
        {
            "source": {"uri": str(src)},
            "output": {"uri": str(tmp_path / "out")},
            "engine": tiny_engine_config(tiny_model),
            "runtime": {"executor": "ray", "max_workers": 1},
        }
    )
    summary = run_job(cfg, {})
    assert summary.failures == 0, summary
    rows = {
        r["source_uri"].rsplit("/", 1)[-1]: r for r in read_table(tmp_path / "out", "segments").to_pylist()
    }
    memo, scan, image = rows["fake-memo.pdf"], rows["single_table.pdf"], rows["DA-1p.png"]
    assert memo["engine"] == PDF_TEXT and memo["prompt_id"] is None  # a good text layer skips the model
    assert "20,000 bottles" in memo["markdown"]
    assert (scan["engine"], scan["prompt_id"], scan["model_id"]) == ("phi4", "phi4.page.v1", str(tiny_model))
    assert (image["engine"], image["prompt_id"]) == ("phi4", "phi4.image.v1")
    assert scan["page_number"] == 1 and scan["elapsed_ms"] > 0


def test_always_model_sends_text_pages_to_the_model(tmp_path):
    from unitok.pipeline.formats.pdf import split_pdf

    cfg = parse_config(
        {
            "source": {"uri": "/"},
            "output": {"uri": "/x"},
            "engine": {"name": "phi4", "phi4": {"always_model": True}},
        }
    )
    p = corpus("pdf/fake-memo.pdf")
    base = Segment("d", p.as_uri(), "v", 1, "application/pdf", "pdf", -1, "object", "none")
    (page,) = routed(split_pdf, p, base, cfg)
    assert page.route == PHI4 and page.image_png


def test_vllm_engine_is_refused_clearly_where_vllm_is_absent(monkeypatch, tmp_path):
    import importlib.util

    from unitok.actors.contract import EngineSetupError
    from unitok.pipeline.stages.preflight import preflight

    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vllm is installed here")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    cfg = parse_config({"source": {"uri": "/"}, "output": {"uri": "/x"}, "engine": {"name": "vllm"}})
    with pytest.raises(
        EngineSetupError,
        match=r"engine.name: vllm needs vllm .*pip install -c constraints.txt -e '.\[vllm\]'",
    ):
        preflight(cfg)
    missing = parse_config(
        {
            "source": {"uri": "/"},
            "output": {"uri": "/x"},
            "engine": {"name": "phi4", "phi4": {"model": "/nope/phi4"}},
        }
    )
    with pytest.raises(EngineSetupError, match="engine.phi4.model: folder /nope/phi4 does not exist"):
        preflight(missing)


class _VllmDouble:
    """A test double of the vllm package (never installed here: its wheels are CUDA builds): it records
    the requests VllmPhi4Engine makes and answers each with its prompt's length."""

    def __init__(self):
        import types

        self.calls: list[tuple[list[dict], list]] = []
        double = self

        class LLM:
            def __init__(self, **kwargs):
                self.kwargs = kwargs

            def generate(self, requests, sampling_params=None, lora_request=None):
                double.calls.append((requests, lora_request))
                done = types.SimpleNamespace
                return [
                    done(outputs=[done(text=f"{len(r['prompt'])}", finish_reason="stop")]) for r in requests
                ]

        self.modules = {
            "vllm": types.SimpleNamespace(LLM=LLM, SamplingParams=lambda **kw: kw),
            "vllm.lora": types.SimpleNamespace(),
            "vllm.lora.request": types.SimpleNamespace(LoRARequest=lambda name, n, path: name),
        }


def test_vllm_makes_every_enrichment_with_the_prompts_and_adapters_of_phi4(monkeypatch, tmp_path):
    """The requests vLLM gets for the enrichments (vLLM needs a GPU: its package is a recording double
    here): the model card's chat format with vLLM's numbered placeholders, the adapter each prompt names,
    none for text alone, and the prompt ids on the outputs."""
    import sys

    from unitok.actors.phi4 import ENRICH_PROMPTS
    from unitok.actors.vllm_engine import VllmPhi4Engine

    double = _VllmDouble()
    for name, module in double.modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    engine = VllmPhi4Engine(str(tmp_path), batch_invariant=False)
    audio = seg("audio_window", audio_f32=np.zeros(16_000, dtype=np.float32).tobytes())
    picture = seg("picture", image_png=png(corpus("image/DA-1p.png")))
    outs = [
        *engine.translate([audio], "de", [None]),
        *engine.describe([picture]),
        engine.summarize(audio),
        engine.merge_summaries(["First part.", "Second part."]),
    ]
    requests = [(r, lora) for call in double.calls for r, lora in zip(*call, strict=True)]
    assert [(r["prompt"], sorted(r.get("multi_modal_data", {})), lora) for r, lora in requests] == [
        ("<|user|><|audio_1|>Translate the audio to German.<|end|><|assistant|>", ["audio"], "speech"),
        (chat_prompt(ENRICH_PROMPTS["description"].text, "<|image_1|>"), ["image"], "vision"),
        (chat_prompt(ENRICH_PROMPTS["summary"].text, "<|audio_1|>"), ["audio"], "speech"),
        (chat_prompt(ENRICH_PROMPTS["summary_merge"].render(None, parts="Part 1: First part.\n\nPart 2: "
                                                            "Second part."), ""), [], None),
    ]  # fmt: skip
    assert [o.prompt_id for o in outs] == [
        "phi4.audio.translate.v1", "phi4.image.describe.v1", "phi4.audio.summary.v1",
        "phi4.text.summary-merge.v1",
    ]  # fmt: skip
    assert [o.markdown for o in outs] == [str(len(r["prompt"])) for r, _ in requests]


def test_slides_use_the_slide_prompt(engine):
    slide = seg("slide", image_png=png(corpus("image/DA-1p.png")))
    (out,) = engine([slide])
    assert isinstance(out.markdown, str) and out.prompt_id == "phi4.slide.v1"
