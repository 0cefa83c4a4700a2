"""vllm engine: Phi-4-multimodal on vLLM for throughput on GPUs, with the same prompts and outputs as phi4.

vLLM serves Phi-4-multimodal as the original remote-code checkpoint (Phi4MMForCausalLM) with its LoRA
adapters enabled per request ("vision" or "speech", model card: --enable-lora --max-lora-rank 320).
vLLM wheels are CUDA builds: the `vllm` extra installs only on GPU machines, so vllm is imported here,
lazily, and nowhere else.

On Ray's staged plan one call holds segments of many objects, all in flight at once (vLLM's continuous
batching). Batch invariance (VLLM_BATCH_INVARIANT=1, on by default: engine.vllm.batch_invariant) makes a
segment's output independent of what else was in flight; vLLM's documentation lists it for NVIDIA GPUs of
compute capability 8.0 and up (A100, H100, H200, B200), and on others a replica says it cannot be sure.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from unitok.actors.contract import EngineOutput
from unitok.actors.phi4 import (
    AUDIO_RATE,
    ENRICH_PROMPTS,
    Prompt,
    chat_prompt,
    clean_output,
    cut_warning,
    prompt_for,
    segment_media,
)
from unitok.pipeline.core.records import Segment

ENGINE_NAME = "vllm"
log = logging.getLogger("unitok.vllm")


class VllmPhi4Engine:
    name = ENGINE_NAME

    def __init__(
        self,
        model: str,
        max_new_tokens: int = 1024,
        max_model_len: int = 32_768,
        max_images_per_prompt: int = 8,
        gpu_memory_utilization: float = 0.85,
        batch_invariant: bool = True,
    ):
        if batch_invariant:
            os.environ["VLLM_BATCH_INVARIANT"] = "1"  # read when vllm is imported: set first
            import torch

            if torch.cuda.is_available() and torch.cuda.get_device_capability() < (8, 0):
                log.warning("vllm: batch invariance needs compute capability 8.0 or more; this GPU has "
                            "%d.%d: a segment's text may depend on what shared its batch",
                            *torch.cuda.get_device_capability())  # fmt: skip
        from vllm import LLM, SamplingParams
        from vllm.lora.request import LoRARequest

        folder = Path(model)
        if not folder.is_dir():
            from huggingface_hub import snapshot_download

            folder = Path(snapshot_download(model))  # the adapters are subfolders of the checkpoint
        self.model_id = model
        self.max_new_tokens = max_new_tokens
        self.llm = LLM(
            model=str(folder),
            trust_remote_code=True,
            max_model_len=max_model_len,
            enable_lora=True,
            max_lora_rank=320,
            max_loras=2,
            limit_mm_per_prompt={"image": max_images_per_prompt, "audio": 1},
            gpu_memory_utilization=gpu_memory_utilization,
        )
        # max_tokens defaults to 16 in vLLM: always set it.
        self.sampling = SamplingParams(max_tokens=max_new_tokens, temperature=0.0)
        self.lora = {
            "vision": LoRARequest("vision", 1, str(folder / "vision-lora")),
            "speech": LoRARequest("speech", 2, str(folder / "speech-lora")),
        }

    def __call__(self, segments: list[Segment]) -> list[EngineOutput]:
        return self._generate([(seg, prompt_for(seg), {}) for seg in segments])

    # The enrichments (pipeline/stages/enrich.py), with the prompts and adapters Phi4Engine uses.
    def translate(
        self, segments: list[Segment], target: str, languages: list[str | None]
    ) -> list[EngineOutput]:
        from unitok.pipeline.core.config import TRANSLATION_LANGUAGES

        values = {"language": TRANSLATION_LANGUAGES[target]}
        return self._generate([(seg, ENRICH_PROMPTS["translation"], values) for seg in segments])

    def describe(self, segments: list[Segment]) -> list[EngineOutput]:
        return self._generate([(seg, ENRICH_PROMPTS["description"], {}) for seg in segments])

    def summarize(self, audio: Segment) -> EngineOutput:
        return self._generate([(audio, ENRICH_PROMPTS["summary"], {})])[0]

    def merge_summaries(self, parts: list[str]) -> EngineOutput:
        joined = "\n\n".join(f"Part {n}: {text}" for n, text in enumerate(parts, 1))
        holder = Segment("", "", "", 0, "", "text", 0, "summary")
        return self._generate([(holder, ENRICH_PROMPTS["summary_merge"], {"parts": joined})])[0]

    def _generate(self, items: list[tuple[Segment, Prompt, dict[str, str]]]) -> list[EngineOutput]:
        """One request per item, in the model card's chat format with vLLM's numbered media placeholders;
        the adapter its prompt names (none for text alone: the base model)."""
        requests, loras, prompt_ids = [], [], []
        for seg, prompt, values in items:
            images, audio = segment_media(seg, prompt)
            instruction = prompt.render(seg, **values)
            request: dict = {}
            if audio is not None:
                request["prompt"] = chat_prompt(instruction, "<|audio_1|>")
                request["multi_modal_data"] = {"audio": [(audio, AUDIO_RATE)]}
            elif images:
                request["prompt"] = chat_prompt(
                    instruction, "".join(f"<|image_{i + 1}|>" for i in range(len(images)))
                )
                request["multi_modal_data"] = {"image": images}
            else:
                request["prompt"] = chat_prompt(instruction, "")
            requests.append(request)
            loras.append(self.lora.get(prompt.adapter))
            prompt_ids.append(prompt.id)
        # vLLM schedules and batches the requests itself (continuous batching).
        outputs = self.llm.generate(requests, sampling_params=self.sampling, lora_request=loras)
        results = []
        for out, prompt_id in zip(outputs, prompt_ids, strict=True):
            completion = out.outputs[0]
            warnings = [cut_warning(self.max_new_tokens)] if completion.finish_reason == "length" else []
            results.append(
                EngineOutput(clean_output(completion.text), self.model_id, warnings, prompt_id=prompt_id)
            )
        return results
