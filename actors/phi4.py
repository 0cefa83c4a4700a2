"""phi4 engine: Microsoft Phi-4-multimodal-instruct through transformers' native Phi4Multimodal classes.

One instance per replica (one replica per GPU by default). Pages, slides and images go in with the vision
adapter, audio windows with the speech adapter, keyframe groups as several images in one prompt. Segments
are batched only with segments of the same shape (adapter, instruction, image sizes or number of samples)
under a token budget, so no prompt is ever padded: a segment's output depends on it and the config, not on
what else shared its call (on the staged Ray plan a call holds pages of many objects). Same-size pages and
same-length audio windows are one shape. Floating point: batched CPU matmuls give each row the same bits
whatever the batch (tested); GPU kernels may not, which vLLM's batch-invariant mode covers.
A generation that stops at max_new_tokens is flagged in the segment's warnings, never cut silently.
"""

from __future__ import annotations

import importlib.util
import io
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from unitok.actors.contract import EngineOutput
from unitok.pipeline.core.records import Segment, clock

log = logging.getLogger("unitok.phi4")
ENGINE_NAME = "phi4"
IMAGE_TOKENS_PER_CROP = 256  # 448x448 crop → 16x16 merged patches (model card)
AUDIO_TOKENS_PER_SECOND = 12.5
AUDIO_RATE = 16_000
MAX_AUDIO_S = 40.0  # the model card's limit for one clip


MAX_SUMMARY_AUDIO_S = 1800.0  # the model card's limit for summarizing one clip (30 minutes)


@dataclass(frozen=True)
class Prompt:
    id: str
    text: str
    adapter: str  # "vision", "speech", or "text" (no media: the base model, adapters off)
    max_audio_s: float = MAX_AUDIO_S

    def render(self, segment: Segment | None, **values: str) -> str:
        """The instruction for one segment: keyframe groups name each frame's time in the video; the
        enrichment prompts take their language or their parts as values."""
        if "{" not in self.text:
            return self.text
        if "{times}" in self.text and segment is not None:
            values = {
                "times": ", ".join(clock(t) for t in segment.frame_times_s) or "unknown times",
                **values,
            }
        return self.text.format(**values)


# Versioned: a change of wording is a new id, recorded in provenance as prompt_id.
PROMPTS: dict[str, Prompt] = {
    "page": Prompt(
        "phi4.page.v1",
        "Convert this document page to Markdown. Keep the reading order. Use Markdown headings for headings, "
        "Markdown lists for lists and Markdown tables for tables. Output only the page content, with no "
        "commentary.",
        "vision",
    ),
    "slide": Prompt(
        "phi4.slide.v1",
        "Convert this presentation slide to Markdown: the title as a heading, bullet points as lists, tables "
        "as Markdown tables. Describe charts, diagrams and pictures in one short sentence each. Output only "
        "the Markdown, with no commentary.",
        "vision",
    ),
    "image": Prompt(
        "phi4.image.v1",
        "Transcribe all text in this image as Markdown. Then add one line starting with 'Image:' that "
        "briefly describes the image. Output nothing else.",
        "vision",
    ),
    "audio_window": Prompt("phi4.audio.v1", "Transcribe the audio clip into text.", "speech"),
    "video_frames": Prompt(
        "phi4.frames.v2",
        "These images are keyframes from one video, in time order, taken at {times}. Describe what they "
        "show in a few sentences and transcribe any on-screen text. Output only the description.",
        "vision",
    ),
}
# Enrichments (pipeline/stages/enrich.py), beside the conversion: the speech translation prompt is the
# model card's; the summary takes a whole recording up to the card's 30 minutes, and longer recordings are
# summarized in parts that the merge prompt joins, hierarchically.
ENRICH_PROMPTS: dict[str, Prompt] = {
    "translation": Prompt("phi4.audio.translate.v1", "Translate the audio to {language}.", "speech"),
    "summary": Prompt(
        "phi4.audio.summary.v1",
        "Summarize the audio in a short paragraph: what it is about, the facts, figures and decisions it "
        "states, and who speaks where that is said. Output only the summary.",
        "speech",
        MAX_SUMMARY_AUDIO_S,
    ),
    "summary_merge": Prompt(
        "phi4.text.summary-merge.v1",
        "These are summaries of consecutive parts of one recording, in order:\n\n{parts}\n\nWrite one "
        "summary of the whole recording in a short paragraph: what it is about, the facts, figures and "
        "decisions it states. Output only the summary.",
        "text",
    ),
    "description": Prompt(
        "phi4.image.describe.v1",
        "Describe this image for a reader who cannot see it, in two to four sentences: what it shows. If it "
        "is a chart or a graph, also give its type, its title, each axis with its unit, each series, and "
        "the values you can read from it, as a Markdown list. Do not invent values you cannot read. Output "
        "only the description.",
        "vision",
    ),
}
MERGE_FAN_IN = 8  # partial summaries merged in one prompt (each is a short paragraph)
_FENCE = re.compile(r"^```(?:markdown|md)?\s*\n(.*?)\n```\s*$", re.S)


def cut_warning(max_new_tokens: int) -> str:
    return f"generation stopped at max_new_tokens={max_new_tokens}: the text may be cut"


def chat_prompt(instruction: str, media_tokens: str) -> str:
    """The model card's chat format: <|user|>{media}{instruction}<|end|><|assistant|>."""
    return f"<|user|>{media_tokens}{instruction}<|end|><|assistant|>"


def clean_output(text: str) -> str:
    text = text.strip()
    m = _FENCE.match(text)
    return m.group(1).strip() if m else text


def prompt_for(segment: Segment) -> Prompt:
    """The prompt for a segment's kind; unknown visual kinds are read as pages."""
    return PROMPTS.get(segment.segment_kind, PROMPTS["page"])


def segment_media(segment: Segment, prompt: Prompt | None = None) -> tuple[list, np.ndarray | None]:
    """(images, audio) for the model, checked against the model card's input limits."""
    from PIL import Image

    prompt = prompt or prompt_for(segment)
    if prompt.adapter == "text":
        return [], None
    if prompt.adapter == "speech":
        if not segment.audio_f32:
            raise ValueError("audio segment has no samples")
        audio = np.frombuffer(segment.audio_f32, dtype=np.float32)
        seconds = len(audio) / AUDIO_RATE
        if seconds > prompt.max_audio_s:
            raise ValueError(
                f"audio window is {seconds:.1f} s; the model takes at most {prompt.max_audio_s:.0f} s "
                f"({prompt.id})"
            )
        return [], audio
    blobs = segment.images()
    if not blobs:
        raise ValueError("segment has no image for the model")
    return [Image.open(io.BytesIO(b)).convert("RGB") for b in blobs], None


@dataclass
class _Item:
    index: int
    segment: Segment
    prompt: Prompt
    instruction: str
    images: list  # PIL images
    audio: np.ndarray | None
    expected_tokens: int
    shape: tuple  # items of one shape tokenize to the same length: batched together, never padded


class Phi4Engine:
    name = ENGINE_NAME

    def __init__(
        self,
        model: str,
        device: str = "auto",
        max_new_tokens: int = 1024,
        token_budget: int = 32_768,
        max_crops: int = 16,
        local_files_only: bool = False,
        attn_implementation: str = "auto",
        min_new_tokens: int = 0,
        loaded: tuple | None = None,
    ):
        """`loaded`: an already built (model, processor) pair, for benchmarks that build the full-size
        architecture with random weights instead of loading a checkpoint."""
        import torch
        from unitok.actors.torch_compat import import_torchvision_safely

        import_torchvision_safely()
        from transformers import AutoProcessor, Phi4MultimodalForCausalLM

        self.torch = torch
        cuda = torch.cuda.is_available() and device in ("auto", "cuda")
        if device == "cuda" and not cuda:
            raise RuntimeError("engine.phi4.device is cuda but no CUDA device is visible to this replica")
        self.device = "cuda" if cuda else "cpu"
        self.dtype = torch.bfloat16 if cuda else torch.float32
        if attn_implementation == "auto":
            flash = cuda and importlib.util.find_spec("flash_attn") is not None
            attn_implementation = "flash_attention_2" if flash else "sdpa"
        self.attn_implementation = attn_implementation
        self.max_new_tokens = max_new_tokens
        self.min_new_tokens = min_new_tokens
        self.token_budget = token_budget
        self.max_crops = max_crops
        if loaded is not None:
            self.model, self.processor = loaded
        else:
            self.processor = AutoProcessor.from_pretrained(model, local_files_only=local_files_only)
            self.model = Phi4MultimodalForCausalLM.from_pretrained(
                model,
                dtype=self.dtype,
                attn_implementation=attn_implementation,
                local_files_only=local_files_only,
            )
        self.processor.tokenizer.padding_side = "left"  # decoder-only batching
        # Crops per image, the main cost of a page (model card: 448x448 crops, ~256 tokens each + global).
        self.processor.image_processor.dynamic_hd = max_crops
        self.model = self.model.to(self.device).eval()
        self.adapters = self._load_adapters(model, local_files_only) if loaded is None else set()
        self._active_adapter: str | None = None
        self.model_id = model
        log.info(
            "phi4 loaded %s on %s (%s, %s), adapters: %s",
            model, self.device, self.dtype, attn_implementation, sorted(self.adapters) or "none",
        )  # fmt: skip

    def _load_adapters(self, model: str, local_files_only: bool) -> set[str]:
        """The real checkpoint ships vision-lora/ and speech-lora/ (LoRA on the language model)."""
        loaded = set()
        for name, sub in (("vision", "vision-lora"), ("speech", "speech-lora")):
            local = Path(model)
            if local.is_dir() and not (local / sub).is_dir():
                continue  # a local folder without that adapter (e.g. a merged or test model)
            try:
                self.model.load_adapter(
                    model, adapter_name=name, subfolder=sub, local_files_only=local_files_only
                )
                loaded.add(name)
            except (OSError, ValueError) as e:
                log.warning("phi4: no %s adapter loaded from %s (%s)", sub, model, e)
        return loaded

    def _use_adapter(self, name: str) -> None:
        if self._active_adapter == name or not self.adapters:
            return
        if name in self.adapters:
            if self._active_adapter == "text":
                self.model.enable_adapters()
            self.model.set_adapter(name)
        elif name == "text":  # text alone: the base model, as the card's text chat uses it
            self.model.disable_adapters()
        self._active_adapter = name

    def _item(self, index: int, seg: Segment, prompt: Prompt | None = None, **values: str) -> _Item:
        prompt = prompt or prompt_for(seg)
        images, audio = segment_media(seg, prompt)
        if audio is not None:
            expected = int(len(audio) / AUDIO_RATE * AUDIO_TOKENS_PER_SECOND) + 32
        else:
            expected = 32 + sum(
                IMAGE_TOKENS_PER_CROP
                * (min(self.max_crops, math.ceil(img.width / 448) * math.ceil(img.height / 448)) + 1)
                for img in images
            )
        instruction = prompt.render(seg, **values)
        if prompt.adapter == "text":
            expected = 32 + len(instruction) // 2  # a token is at least ~2 characters of English
        shape = (
            prompt.adapter,
            instruction,
            len(audio) if audio is not None else tuple(img.size for img in images),
        )
        return _Item(index, seg, prompt, instruction, images, audio, expected, shape)

    def _batches(self, items: list[_Item]) -> list[list[_Item]]:
        """Items of one shape per batch (no padding); (length + new tokens) x n under the budget. Shapes
        in a fixed order (adapter, then length), items in their order: the same batches for the same
        input, whatever order the segments came in."""
        shapes: dict[tuple, list[_Item]] = {}
        for item in items:
            shapes.setdefault(item.shape, []).append(item)
        order = sorted(shapes, key=lambda k: (k[0], shapes[k][0].expected_tokens, repr(k)))
        out: list[list[_Item]] = []
        for key in order:
            group = shapes[key]
            per_batch = max(1, self.token_budget // (group[0].expected_tokens + self.max_new_tokens))
            out.extend(group[i : i + per_batch] for i in range(0, len(group), per_batch))
        return out

    def _generate(self, batch: list[_Item]) -> list[tuple[str, list[str]]]:
        proc = self.processor
        adapter = batch[0].prompt.adapter
        self._use_adapter(adapter)
        if adapter == "text":
            inputs = proc(
                text=[chat_prompt(i.instruction, "") for i in batch], padding=True, return_tensors="pt"
            )
        elif adapter == "speech":
            texts = [chat_prompt(i.instruction, proc.audio_token) for i in batch]
            inputs = proc(
                text=texts,
                audio=[i.audio for i in batch],
                sampling_rate=AUDIO_RATE,
                padding=True,
                return_tensors="pt",
            )
        else:
            texts = [chat_prompt(i.instruction, proc.image_token * len(i.images)) for i in batch]
            images = [img for i in batch for img in i.images]
            inputs = proc(text=texts, images=images, padding=True, return_tensors="pt")
        inputs = inputs.to(self.device)
        for key, value in inputs.items():
            if self.torch.is_floating_point(value):
                inputs[key] = value.to(self.dtype)
        with self.torch.inference_mode():
            out = self.model.generate(
                **inputs,
                max_new_tokens=self.max_new_tokens,
                min_new_tokens=self.min_new_tokens,
                do_sample=False,
            )
        new_tokens = out[:, inputs["input_ids"].shape[1] :]
        eos = self.model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos]) | {proc.tokenizer.eos_token_id}
        results = []
        for row in new_tokens.tolist():
            pad = proc.tokenizer.pad_token_id
            produced = [t for t in row if t != pad] if pad not in eos_ids else row
            warnings = []
            if len(row) >= self.max_new_tokens and not eos_ids.intersection(produced):
                warnings.append(
                    f"generation stopped at max_new_tokens={self.max_new_tokens}: the text may be cut"
                )
            text = proc.tokenizer.decode(row, skip_special_tokens=True, clean_up_tokenization_spaces=False)
            results.append((clean_output(text), warnings))
        return results

    def __call__(self, segments: list[Segment]) -> list[EngineOutput]:
        return self._run([self._item(i, s) for i, s in enumerate(segments)])

    def translate(
        self, segments: list[Segment], target: str, languages: list[str | None]
    ) -> list[EngineOutput]:
        """Each audio window's speech in the target language (phi4.audio.translate.v1, the model card's
        prompt); `languages`, the windows' transcript languages, are not needed by the model."""
        from unitok.pipeline.core.config import TRANSLATION_LANGUAGES

        prompt, language = ENRICH_PROMPTS["translation"], TRANSLATION_LANGUAGES[target]
        return self._run([self._item(i, s, prompt, language=language) for i, s in enumerate(segments)])

    def describe(self, segments: list[Segment]) -> list[EngineOutput]:
        """A description of each segment's picture, figure or chart (phi4.image.describe.v1)."""
        prompt = ENRICH_PROMPTS["description"]
        return self._run([self._item(i, s, prompt) for i, s in enumerate(segments)])

    def summarize(self, audio: Segment) -> EngineOutput:
        """One summary of a recording's part of up to 30 minutes (phi4.audio.summary.v1)."""
        return self._run([self._item(0, audio, ENRICH_PROMPTS["summary"])])[0]

    def merge_summaries(self, parts: list[str]) -> EngineOutput:
        """One summary from the summaries of consecutive parts (phi4.text.summary-merge.v1)."""
        joined = "\n\n".join(f"Part {n}: {text}" for n, text in enumerate(parts, 1))
        holder = Segment("", "", "", 0, "", "text", 0, "summary")
        return self._run([self._item(0, holder, ENRICH_PROMPTS["summary_merge"], parts=joined)])[0]

    def _run(self, items: list[_Item]) -> list[EngineOutput]:
        results: list[EngineOutput | None] = [None] * len(items)
        for batch in self._batches(items):
            for item, (text, warnings) in zip(batch, self._generate(batch), strict=True):
                results[item.index] = EngineOutput(text, self.model_id, warnings, prompt_id=item.prompt.id)
        return results  # type: ignore[return-value]
