"""Job configuration: YAML validated by pydantic, failing fast with the field path and the reason.

Strings may reference environment variables as ``${NAME}`` or ``${NAME:-default}`` so secrets stay out of
config files. The manifest records the config as written (references unexpanded), so a resolved secret is
never written to output.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


class ConfigError(ValueError):
    """A config that cannot run; the message names each bad field and why."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class S3Config(_Strict):
    """Where and how to reach S3. Credentials are not here on purpose: they come from the AWS chain."""

    endpoint_url: str | None = Field(
        default=None, description="S3-compatible server, e.g. http://127.0.0.1:8333"
    )
    region: str | None = Field(
        default=None, description="AWS region; default: the AWS chain's, else us-east-1."
    )
    max_attempts: int = Field(default=8, ge=1, le=50, description="Retries with backoff on throttling/drops.")
    connect_timeout_s: float = Field(default=5.0, gt=0, description="Seconds to connect to the endpoint.")
    read_timeout_s: float = Field(default=60.0, gt=0, description="Seconds a read may wait for bytes.")


class SourceConfig(_Strict):
    uri: str = Field(description="Folder path, file:// URI or s3://bucket/prefix.")
    include: list[str] = Field(default_factory=lambda: ["**"], description="Globs on the relative path.")
    exclude: list[str] = Field(default_factory=list, description="Globs of paths to leave out.")
    follow_symlinks: bool = Field(
        default=False,
        description="Folder sources: convert what symbolic links point to (files and folders, inside the "
        "source or not). Off: links are skipped and counted in the summary.",
    )
    s3: S3Config = Field(default_factory=S3Config)

    @field_validator("uri")
    @classmethod
    def _uri_scheme(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be empty")
        scheme = v.split("://", 1)[0] if "://" in v else "file"
        if scheme not in ("file", "s3"):
            raise ValueError(f"scheme {scheme}:// is not supported (supported: local paths, file://, s3://)")
        if scheme == "s3" and not v[5:].split("/", 1)[0]:
            raise ValueError("s3:// URI has no bucket name")
        return v


class LanceDBConfig(_Strict):
    """A LanceDB table kept in step with the chunks table (connectors/lancedb_sink.py)."""

    uri: str = Field(description="LanceDB database: a folder, or s3://... as LanceDB accepts it.")
    table: str = Field(default="chunks", pattern=r"^[A-Za-z0-9_\-]+$", description="LanceDB table name.")
    index_min_rows: int = Field(
        default=100_000,
        ge=256,
        description="`unitok maintain` builds the vector index once the table holds this many rows (below "
        "it a flat search is exact and fast).",
    )


class OutputConfig(_Strict):
    uri: str = Field(
        description="Folder, file:// URI or s3://bucket/prefix for the Delta tables segments/, documents/, "
        "errors/ and objects/."
    )
    s3: S3Config = Field(default_factory=S3Config)
    compression: Literal["zstd", "snappy", "gzip", "none"] = Field(
        default="zstd", description="Parquet codec of the tables' data files."
    )
    max_rows_per_file: int = Field(
        default=100_000, ge=1, description="An object with more rows in a table gets several data files."
    )
    commit_every_s: float = Field(
        default=30.0,
        gt=0,
        description="Commit the objects finished so far once the oldest of them has waited this long.",
    )
    commit_every_objects: int = Field(
        default=1000, ge=1, description="Commit once this many finished objects are waiting."
    )
    checkpoint_interval: int = Field(
        default=10, ge=1, description="A Delta checkpoint every this many commits (readers replay less log)."
    )
    compact_at_files: int = Field(
        default=512,
        ge=0,
        description="After a run, the run state (the objects table, which every run reads whole to plan) "
        "has its small files merged once it holds more than this many (a run writes a file per object): a "
        "nightly run's planning stays flat in the output's size. 0: never. The data tables are compacted by "
        "unitok maintain --compact.",
    )
    log_retention_days: int = Field(
        default=30, ge=1, description="Commit log entries older than this are removed after a checkpoint."
    )
    vacuum_retention_hours: int = Field(
        default=168,
        ge=0,
        description="`unitok maintain` deletes data files no version younger than this still uses.",
    )
    lancedb: LanceDBConfig | None = Field(
        default=None, description="Keep a LanceDB table in step with the chunks table after each run."
    )

    @property
    def table_config(self) -> dict[str, str]:
        """Delta table properties every output table is created with."""
        return {
            "delta.enableChangeDataFeed": "true",
            "delta.checkpointInterval": str(self.checkpoint_interval),
            "delta.logRetentionDuration": f"interval {self.log_retention_days} days",
            "delta.enableExpiredLogCleanup": "true",
        }

    @property
    def parquet_compression(self) -> str | None:
        return None if self.compression == "none" else self.compression

    @field_validator("uri")
    @classmethod
    def _uri_scheme(cls, v: str) -> str:
        return SourceConfig._uri_scheme(v)


class PdfConfig(_Strict):
    min_text_chars: int = Field(default=16, ge=0, description="Fewer non-space chars: the page goes to OCR.")
    min_text_quality: float = Field(
        default=0.5, ge=0, le=1, description="Share of word-like tokens a visible text layer needs."
    )
    reocr_below_quality: float = Field(
        default=0.95,
        ge=0,
        le=1,
        description="An invisible text layer (an earlier OCR pass) scoring below this is OCR'd again.",
    )
    ocr_dpi: int = Field(default=300, ge=72, le=600, description="Render resolution of pages for OCR.")
    max_pages: int | None = Field(
        default=None, ge=1, description="Pages past this are skipped with a warning."
    )
    page_range: tuple[int, int] | None = Field(
        default=None,
        description="Only these pages, first and last counted from 1 (docling-serve's page_range); "
        "the others are neither read nor reported.",
    )

    @field_validator("page_range")
    @classmethod
    def _page_range(cls, v: tuple[int, int] | None) -> tuple[int, int] | None:
        if v is not None and not 1 <= v[0] <= v[1]:
            raise ValueError("must be [first, last] with 1 <= first <= last")
        return v


class ImageConfig(_Strict):
    max_pixels: int = Field(
        default=120_000_000, ge=1, description="Larger images are refused (decompression bombs)."
    )
    max_frames: int = Field(default=500, ge=1, description="Multi-page TIFF frames past this are skipped.")


class PptxConfig(_Strict):
    partitioner: Literal["python-pptx", "unstructured"] = Field(
        default="python-pptx",
        description="unstructured is an optional extra and needs spaCy's en_core_web_sm installed.",
    )
    max_uncompressed_bytes: int = Field(
        default=1 << 30, ge=1, description="Decks inflating past this are refused."
    )
    convert_timeout_s: float = Field(default=120, gt=0, description="LibreOffice limit (.ppt, slide images).")
    render_dpi: int = Field(default=110, ge=36, le=300, description="Slide images for the model.")
    ocr_pictures: bool = Field(default=False, description="CPU engine: OCR pictures inside slides.")


class DocumentsConfig(_Strict):
    """Word documents, spreadsheets, HTML, Markdown and text, CSV/TSV, EPUB and e-mail."""

    max_segment_chars: int = Field(
        default=20000,
        ge=500,
        description="A section longer than this is cut at paragraph boundaries into several segments.",
    )
    max_rows_per_segment: int = Field(
        default=200, ge=1, description="Spreadsheet and CSV rows per segment (each repeats the header row)."
    )
    max_cells: int = Field(
        default=2_000_000,
        ge=1,
        description="Cells read per workbook or CSV; the rest is left out with a warning (bounded time).",
    )
    max_uncompressed_bytes: int = Field(
        default=512 << 20, ge=1, description="DOCX, XLSX and EPUB files inflating past this are refused."
    )
    max_attachments: int = Field(
        default=50, ge=0, description="Attachments of one e-mail converted (nested messages count too)."
    )
    convert_timeout_s: float = Field(
        default=120, gt=0, description="LibreOffice limit for legacy .doc and .xls and ODF files."
    )


class AudioConfig(_Strict):
    max_window_s: float = Field(default=30.0, gt=1, le=40, description="Phi-4-multimodal takes up to 40 s.")
    overlap_s: float = Field(default=0.5, ge=0, le=5, description="Seconds shared by consecutive windows.")
    cut_search_s: float = Field(default=5.0, gt=0, description="Look for the quietest cut in the last N s.")
    silence_dbfs: float = Field(default=-50.0, le=0, description="Windows quieter than this are dropped.")
    decode_timeout_s: float = Field(
        default=60.0, gt=0, description="ffmpeg stalls longer than this are killed."
    )
    heading_every_s: float = Field(default=300.0, gt=0, description="Timestamp headings in the transcript.")
    asr_model: str | None = Field(
        default=None,
        description="base: the packaged multilingual Whisper base (the asr-base extra); or a local "
        "CTranslate2 Whisper folder; default: the packaged tiny.en (English only).",
    )
    language: str | None = Field(
        default="en",
        pattern=r"^[a-z]{2,3}$",
        description="Whisper language code; null detects it once per recording (multilingual models only).",
    )


class VideoConfig(_Strict):
    keyframes: bool = Field(
        default=True, description="Convert keyframes (OCR on the CPU engine, descriptions with Phi-4)."
    )
    # Measured: a camera cut or a title card scores 0.4-1.0; a slide change within one template (new
    # text on the same background) only 0.02. Screen recordings want 0.01 (configs/recordings.yaml).
    scene_threshold: float = Field(
        default=0.3, gt=0, lt=1, description="ffmpeg scene score above which a frame starts a new scene."
    )
    min_spacing_s: float = Field(default=2.0, ge=0, description="No two keyframes closer than this.")
    max_spacing_s: float | None = Field(
        default=30.0, gt=0, description="A keyframe at least this often, scene change or not; null: never."
    )
    max_frames: int = Field(default=2000, ge=1, description="Keyframes per file at most; more is a warning.")
    frames_per_segment: int = Field(
        default=4, ge=1, le=16, description="Keyframes described together by Phi-4 (OCR reads one at a time)."
    )
    # 1920: a 1080p screen share keeps its small text. Measured with Tesseract on 16 px text at 1080p:
    # 166/168 words at 1920 px, 136/168 scaled to 1280 px (0.32 s against 0.20 s per frame).
    frame_max_side: int = Field(
        default=1920, ge=64, le=4096, description="Keyframes are scaled down to this."
    )

    @model_validator(mode="after")
    def _spacing(self) -> VideoConfig:
        if self.max_spacing_s is not None and self.max_spacing_s < self.min_spacing_s:
            raise ValueError("max_spacing_s must be at least min_spacing_s")
        return self


class OcrConfig(_Strict):
    engine: Literal["tesseract"] = Field(default="tesseract", description="The OCR engine.")
    languages: str = Field(
        default="eng",
        description="Tesseract language codes joined by '+', e.g. eng+deu; or auto: each image's script by "
        "Tesseract's detection (osd), then every installed language pack of that script.",
    )
    tessdata_dir: str | None = Field(default=None, description="Folder of *.traineddata; found if not given.")
    mode: Literal["auto", "force", "off"] = Field(
        default="auto",
        description="auto: pixels are read where no usable text layer is; force: every PDF page is read from "
        "its pixels; off: no pixels are read (pages keep their text layer, images give a warning and no "
        "text).",
    )
    page_segmentation_mode: int = Field(
        default=3, ge=0, le=13, description="Tesseract's page segmentation mode."
    )

    @field_validator("languages")
    @classmethod
    def _langs(cls, v: str) -> str:
        if v != "auto" and not re.fullmatch(r"[A-Za-z_]+(\+[A-Za-z_]+)*", v):
            raise ValueError("must be Tesseract codes joined by '+', e.g. 'eng' or 'eng+deu'")
        return v


class Phi4Config(_Strict):
    model: str = Field(
        default="microsoft/Phi-4-multimodal-instruct",
        description="Local folder or hub id of a transformers-native Phi-4-multimodal checkpoint.",
    )
    local_files_only: bool = Field(
        default=False, description="Never reach a hub (HF_HUB_OFFLINE=1 also works)."
    )
    device: Literal["auto", "cuda", "cpu"] = Field(
        default="auto", description="auto: CUDA when present (bf16), else the CPU (float32)."
    )
    attn_implementation: Literal["auto", "flash_attention_2", "sdpa", "eager"] = Field(
        default="auto", description="auto: flash_attention_2 on CUDA when flash-attn imports, else SDPA."
    )
    max_new_tokens: int = Field(
        default=1024,
        ge=1,
        le=32_768,
        description="Generated tokens per item at most (reaching it is a warning).",
    )
    token_budget: int = Field(
        default=32_768, ge=256, description="(longest prompt + max_new_tokens) x batch size stays under this."
    )
    max_crops: int = Field(default=16, ge=1, le=64, description="448x448 crops per image (~256 tokens each).")
    num_gpus: float = Field(
        default=1.0, ge=0, description="GPUs per replica; fractional shares a GPU; 0 on CPU."
    )
    always_model: bool = Field(default=False, description="Send text-layer PDF pages to the model too.")
    batch_size: int = Field(
        default=16,
        ge=1,
        le=1024,
        description="Segments per model call: on Ray's staged plan from many objects at once (vLLM keeps "
        "them all in flight; transformers batches those of one shape).",
    )


class VllmConfig(_Strict):
    max_model_len: int = Field(default=32_768, ge=1024, description="vLLM's context length.")
    max_images_per_prompt: int = Field(default=8, ge=1, le=64, description="Images one prompt may hold.")
    gpu_memory_utilization: float = Field(
        default=0.85, gt=0, le=1, description="Share of GPU memory vLLM takes."
    )
    batch_invariant: bool = Field(
        default=True,
        description="VLLM_BATCH_INVARIANT=1: a segment's text does not depend on what else was in flight "
        "(GPUs of compute capability 8.0 and up).",
    )


class EngineConfig(_Strict):
    # cpu: PDF text layers where usable, Tesseract OCR for scans and images.
    # phi4: text layers where usable (unless phi4.always_model), Phi-4-multimodal (transformers) for the rest.
    # vllm: as phi4, served by vLLM (GPU only; phi4.model must be the original remote-code checkpoint).
    name: Literal["cpu", "phi4", "vllm"] = Field(
        default="cpu",
        description="cpu: text layers and Tesseract (and Whisper for sound); phi4: text layers and "
        "Phi-4-multimodal on transformers; vllm: the same model on vLLM (GPU).",
    )
    phi4: Phi4Config = Field(default_factory=Phi4Config)
    vllm: VllmConfig = Field(default_factory=VllmConfig)

    @property
    def uses_phi4(self) -> bool:
        return self.name in ("phi4", "vllm")


class ChunkingConfig(_Strict):
    """The chunks table: documents cut for embedding (pipeline/stages/chunk.py)."""

    enabled: bool = Field(default=True, description="Write the chunks table.")
    max_tokens: int = Field(default=512, ge=16, description="Budget per chunk, counted with `tokenizer`.")
    overlap_tokens: int = Field(default=0, ge=0, description="Tokens shared with the previous chunk.")
    tokenizer: str | None = Field(
        default=None,
        description="A tokenizer.json, or a Hugging Face folder holding one (the embedding model's); "
        "default: all-MiniLM-L6-v2's, from its package.",
    )
    prefix_headings: bool = Field(
        default=False, description="Begin each chunk's text with its heading path (`A > B`), for embedding."
    )

    @model_validator(mode="after")
    def _overlap(self) -> ChunkingConfig:
        if self.overlap_tokens >= self.max_tokens:
            raise ValueError(
                f"overlap_tokens ({self.overlap_tokens}) must be below max_tokens ({self.max_tokens})"
            )
        if self.tokenizer and not Path(self.tokenizer).exists():
            raise ValueError(
                f"tokenizer {self.tokenizer} does not exist (a tokenizer.json or a folder with one)"
            )
        return self


class EmbeddingConfig(_Strict):
    """Embeddings of the chunks (actors/embedder.py), off by default."""

    enabled: bool = Field(default=False, description="Embed every chunk (the chunks' `embedding` column).")
    model: str | None = Field(
        default=None,
        description="A sentence-transformers model folder; default: all-MiniLM-L6-v2, from its package.",
    )
    batch_size: int = Field(
        default=32, ge=1, description="Chunks per encoder call (one document's, in order)."
    )
    max_length: int = Field(default=512, ge=8, description="Tokens of a chunk the encoder reads.")
    device: Literal["auto", "cpu", "cuda"] = Field(default="auto", description="Where the encoder runs.")
    num_gpus: float = Field(
        default=0,
        ge=0,
        description="GPUs per Ray object worker for the encoder (0: the CPU, or the engine's GPU).",
    )
    # Accepted so older configs validate; chunks are embedded in the object workers (runtime.max_workers).
    max_workers: int | None = Field(default=None, ge=1, description="Ignored.")

    @field_validator("model")
    @classmethod
    def _folder(cls, v: str | None) -> str | None:
        if v is not None and not Path(v).is_dir():
            raise ValueError(f"folder {v} does not exist (a sentence-transformers model folder)")
        return v


# Speech translation targets: the languages the model card lists for Phi-4-multimodal's speech translation
# (to English from the others, and from English to them). The prompt names the language in words.
TRANSLATION_LANGUAGES = {
    "en": "English",
    "de": "German",
    "es": "Spanish",
    "fr": "French",
    "it": "Italian",
    "ja": "Japanese",
    "pt": "Portuguese",
    "zh": "Chinese",
}


class AudioEnrichConfig(_Strict):
    translate_to: str | None = Field(
        default=None,
        description="A `translation` next to each audio window's transcript and on the recording's "
        "document, in this language (en, de, es, fr, it, ja, pt, zh). The cpu engine translates with "
        "the multilingual Whisper (audio.asr_model: base), into English only; Phi-4 into any of them.",
    )
    summary: bool = Field(
        default=False,
        description="A `summary` of each recording on its document (and its chunks), from the whole "
        "recording in parts of at most 30 minutes, merged where it is longer. Phi-4 engines only.",
    )

    @field_validator("translate_to")
    @classmethod
    def _language(cls, v: str | None) -> str | None:
        if v is not None and v not in TRANSLATION_LANGUAGES:
            raise ValueError(f"must be one of {', '.join(TRANSLATION_LANGUAGES)} (ISO 639-1), not {v!r}")
        return v


class ImagesEnrichConfig(_Strict):
    describe: bool = Field(
        default=False,
        description="A `description` of each picture, figure and chart in pages, slides, office "
        "documents and standalone images (for a chart: its type, axes, series and the values it can "
        "read), also written into the document as generated text. Phi-4 engines only.",
    )


class EnrichConfig(_Strict):
    """Outputs a model adds beside the conversion, all off by default. Turning one on later redoes only
    this stage for the objects it touches (README: scheduled and incremental runs)."""

    audio: AudioEnrichConfig = Field(default_factory=AudioEnrichConfig)
    images: ImagesEnrichConfig = Field(default_factory=ImagesEnrichConfig)

    @property
    def any(self) -> bool:
        return bool(self.audio.translate_to or self.audio.summary or self.images.describe)

    def gpu_only(self) -> list[str]:
        """The enrichments asked for that only a Phi-4 engine makes, as config keys."""
        keys = {"enrich.audio.summary": self.audio.summary, "enrich.images.describe": self.images.describe}
        return [key for key, on in keys.items() if on]


BeamOption = str | int | float | bool | list[str]


class BeamConfig(_Strict):
    """The Beam driver (runtime.executor: beam). Listing, planning and the commit stay in the driver
    process; the pipeline splits, converts and assembles."""

    runner: str = Field(
        default="DirectRunner",
        min_length=1,
        description="DirectRunner: Beam's portable Python runner in this machine's processes (never the "
        "Prism download Beam's own DirectRunner tries first). Any other name (PrismRunner, FlinkRunner, "
        "SparkRunner, DataflowRunner, ...) goes to Beam as written.",
    )
    options: dict[str, BeamOption] = Field(
        default_factory=dict,
        description="Beam pipeline options, passed through by their Beam names (e.g. flink_master, "
        "project, region, temp_location, direct_num_workers). Checked against Beam's options before "
        "anything runs.",
    )


class RuntimeConfig(_Strict):
    executor: Literal["auto", "ray", "local", "beam"] = Field(
        default="auto",
        description="ray: Ray Data (embedded local Ray, or a cluster). local: this process plus a process "
        "pool, no Ray. beam: an Apache Beam pipeline (runtime.beam). auto: ray when a cluster address is "
        "set; else the driver with the shorter estimated wall time (its measured start-up plus the job's "
        "work, probed from headers and page trees, at per-item rates: pipeline/core/rates.json), the local "
        "one up to local_max_s; an S3 source, not probed before a run, runs locally at or under "
        "local_max_objects and local_max_bytes; auto never picks beam.",
    )
    beam: BeamConfig = Field(default_factory=BeamConfig)
    local_max_s: float = Field(
        default=1800.0,
        gt=0,
        description="auto runs a job on the local driver when its estimated wall time there is at most this "
        "many seconds; longer jobs go to Ray, whose failed workers are restarted and their objects retried",
    )
    local_max_objects: int = Field(
        default=8, ge=0, description="auto, for an S3 source: local at or under this many objects"
    )
    local_max_bytes: int = Field(default=256 << 20, ge=0, description="... and at or under this many bytes.")
    ray_address: str | None = Field(default=None, description="Join this cluster; RAY_ADDRESS also works.")
    num_cpus: int | None = Field(default=None, ge=1, description="CPUs for the embedded local Ray.")
    min_workers: int = Field(default=1, ge=1, description="Engine actor pool lower bound.")
    max_workers: int | None = Field(default=None, ge=1, description="Engine actor pool upper bound.")
    engine_batch_size: int = Field(default=16, ge=1, description="Segments per engine call.")
    ray_plan: Literal["staged", "per_object"] = Field(
        default="staged",
        description="Ray's plan: staged (objects split on CPU workers, engine pools batching segments of "
        "many objects, each object assembled once its segments are back) or per_object (one worker "
        "converts a whole object: the earlier plan, kept for comparison).",
    )
    object_store_mib: int = Field(
        default=2048,
        ge=64,
        description="Staged plan: the object-store memory Ray Data may fill with segments waiting for the "
        "engines (rendered pages, audio); past it the splitters wait.",
    )
    # Accepted so older configs validate; work now moves in engine batches (stages.work).
    segments_per_block: int = Field(default=32, ge=1, description="Ignored.")
    fail_on_error: bool = Field(
        default=False, description="Exit 1 when an object or segment failed (as run --fail-on-error)."
    )
    node_wait_s: float = Field(
        default=600.0,
        gt=0,
        description="A Ray run in which no node can host a worker (the worker nodes lost, none replacing "
        "them) stops after this many seconds without progress: exit 3 with what is committed, or 2.",
    )
    retry_failed: bool = Field(
        default=False,
        description="Incremental runs: convert again the objects whose worker died converting them (marked "
        "crashed: skipped until they change), as run --retry-failed.",
    )
    max_delete_fraction: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="A run that would delete more than this share of the objects the last run listed, or "
        "lists none where it listed some, stops before committing (exit 2) unless --allow-mass-delete.",
    )
    on_pipeline_upgrade: Literal["reconvert", "keep"] = Field(
        default="reconvert",
        description="An incremental run of a newer pipeline version converts again what an older one "
        "converted (reconvert), or keeps those rows until the object changes (keep).",
    )
    # Accepted so older configs validate; documents are now assembled per object in the workers.
    local_assembly_max_bytes: int = Field(default=512 << 20, ge=0, description="Ignored.")

    @property
    def pool_size(self) -> int:
        """Worker processes of a driver on this machine (local pool, Beam's): max_workers, else num_cpus,
        else this machine's cores."""
        return self.max_workers or self.num_cpus or os.cpu_count() or 1

    @model_validator(mode="after")
    def _bounds(self) -> RuntimeConfig:
        if self.max_workers is not None and self.max_workers < self.min_workers:
            raise ValueError(f"max_workers ({self.max_workers}) is below min_workers ({self.min_workers})")
        return self


# The settings a request's options map to (pipeline/drivers/docling_api.py).
Overridable = Literal[
    "ocr.languages", "ocr.mode", "pdf.page_range", "chunking.enabled", "chunking.max_tokens"
]


class ServeConfig(_Strict):
    """`unitok serve`: the HTTP API (docling-serve's v1 routes) on Ray Serve."""

    max_upload_mib: int = Field(default=512, ge=1, description="A request body over this is refused (413).")
    body_timeout_s: float = Field(
        default=60.0, gt=0, description="A request body not received within this is refused (408)."
    )
    request_timeout_s: float = Field(
        default=600.0,
        gt=0,
        description="A conversion that takes longer answers 504 (the async routes do not).",
    )
    result_ttl_s: float = Field(default=3600.0, gt=0, description="How long an async task's result is kept.")
    min_replicas: int = Field(default=1, ge=1, description="Engine replicas at least (autoscaled on load).")
    max_replicas: int = Field(default=1, ge=1, description="Engine replicas at most.")
    max_batch_size: int = Field(
        default=8,
        ge=1,
        le=64,
        description="Concurrent requests an engine replica takes in one call (converted one after another; "
        "the replica is scaled on this many waiting).",
    )
    api_key: str | None = Field(
        default=None, description="Requests must send it as X-Api-Key (UNITOK_API_KEY also sets it)."
    )
    allowed_sources: list[str] = Field(
        default_factory=list,
        description="Prefixes /v1/convert/source may read, nothing else: https://host/path/ (or https:// for "
        "any public address; loopback and private addresses only where a prefix names their host), "
        "s3://bucket/prefix/, folders.",
    )
    max_tasks: int = Field(
        default=1000,
        ge=1,
        description="Async tasks queued, running or holding a result at once; past it a submission is "
        "refused (503). Results wait on disk, not in memory.",
    )
    max_inflight_mib: int = Field(
        default=1024,
        ge=1,
        description="Files' bytes an ingress holds in memory on their way to the engines; past it a "
        "conversion waits with its upload on disk (one file always passes).",
    )
    max_engine_sets: int = Field(
        default=4,
        ge=1,
        description="Engine sets a replica keeps loaded for requests' settings (e.g. OCR languages); the "
        "least recently used one is closed past it.",
    )
    overridable: list[Overridable] = Field(
        default_factory=lambda: list(get_args(Overridable)),
        description="Settings a request may override with options (form fields or JSON `options`).",
    )

    @model_validator(mode="after")
    def _replicas(self) -> ServeConfig:
        if self.max_replicas < self.min_replicas:
            raise ValueError(
                f"max_replicas ({self.max_replicas}) is below min_replicas ({self.min_replicas})"
            )
        return self


class JobConfig(_Strict):
    # incremental: convert only new or changed objects (by ETag/version; size and mtime for local files),
    # carry the rest forward and record deletions. full: convert everything. Default: incremental for
    # s3 sources, full otherwise.
    mode: Literal["incremental", "full"] | None = Field(
        default=None,
        description="incremental: work only on what changed since the last run (see the README's scheduling "
        "section); full: convert everything. Default: incremental for s3:// sources, full otherwise.",
    )
    source: SourceConfig
    output: OutputConfig
    pdf: PdfConfig = Field(default_factory=PdfConfig)
    image: ImageConfig = Field(default_factory=ImageConfig)
    pptx: PptxConfig = Field(default_factory=PptxConfig)
    documents: DocumentsConfig = Field(default_factory=DocumentsConfig)
    audio: AudioConfig = Field(default_factory=AudioConfig)
    video: VideoConfig = Field(default_factory=VideoConfig)
    ocr: OcrConfig = Field(default_factory=OcrConfig)
    engine: EngineConfig = Field(default_factory=EngineConfig)
    chunking: ChunkingConfig = Field(default_factory=ChunkingConfig)
    embedding: EmbeddingConfig = Field(default_factory=EmbeddingConfig)
    enrich: EnrichConfig = Field(default_factory=EnrichConfig)
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig)
    serve: ServeConfig = Field(default_factory=ServeConfig)

    @model_validator(mode="after")
    def _frames_fit_vllm(self) -> JobConfig:
        if (
            self.engine.name == "vllm"
            and self.video.frames_per_segment > self.engine.vllm.max_images_per_prompt
        ):
            raise ValueError(
                f"video.frames_per_segment ({self.video.frames_per_segment}) is above "
                f"engine.vllm.max_images_per_prompt ({self.engine.vllm.max_images_per_prompt})"
            )
        return self

    @property
    def run_mode(self) -> str:
        return self.mode or ("incremental" if self.source.uri.startswith("s3://") else "full")


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _expand_env(node: Any, path: str) -> Any:
    if isinstance(node, dict):
        return {k: _expand_env(v, f"{path}.{k}" if path else str(k)) for k, v in node.items()}
    if isinstance(node, list):
        return [_expand_env(v, f"{path}[{i}]") for i, v in enumerate(node)]
    if isinstance(node, str):

        def sub(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            value = os.environ.get(name, default)
            if value is None:
                raise ConfigError(f"{path}: environment variable {name} is not set")
            return value

        return _ENV_REF.sub(sub, node)
    return node


def _format_validation_error(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; docs/configuration.md lists every key)"
        elif msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        lines.append(f"{loc}: {msg}")
    return "\n".join(lines)


def parse_config(raw: Any, overrides: dict[str, str] | None = None) -> JobConfig:
    """Validate a parsed YAML document (plus CLI overrides such as {"source.uri": ...})."""
    if not isinstance(raw, dict):
        raise ConfigError("(top level): the config must be a mapping with at least 'source' and 'output'")
    data = _expand_env(raw, "")
    for dotted, value in (overrides or {}).items():
        section, key = dotted.split(".", 1)
        sub = data.setdefault(section, {})
        if not isinstance(sub, dict):
            raise ConfigError(f"{section}: must be a mapping")
        sub[key] = value
    try:
        return JobConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_format_validation_error(e)) from None


# A job file is a page of settings. The bounds refuse a "billion laughs" document (nested aliases that
# expand to millions of values) before anything walks it as a tree, and a file that is not a config.
MAX_CONFIG_BYTES = 1 << 20
MAX_CONFIG_VALUES = 100_000


def _expanded_size(root: yaml.Node, limit: int) -> int:
    """How many values the document holds once every alias is expanded, counted on the composed graph
    (an alias is a shared node, so each node is sized once); stops as soon as the count passes limit."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in open_nodes:
            raise ConfigError("(top level): an alias refers to a node that contains it (a recursive alias)")
        open_nodes.add(key)
        total = 1
        if isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        else:
            children = []
        for child in children:
            total += size(child)
            if total > limit:
                break
        open_nodes.discard(key)
        sizes[key] = total
        return total

    return size(root)


def load_yaml(text: str, where: str) -> Any:
    """Parse a config document, refusing one that expands (through aliases) past MAX_CONFIG_VALUES."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node, MAX_CONFIG_VALUES) > MAX_CONFIG_VALUES:
            raise ConfigError(
                f"{where}: the document expands to more than {MAX_CONFIG_VALUES:,} values through YAML "
                "aliases (an alias bomb?); write the values out or use fewer nested aliases"
            )
        return loader.construct_document(node)
    finally:
        loader.dispose()


def load_config(
    path: str | Path, overrides: dict[str, str] | None = None
) -> tuple[JobConfig, dict[str, Any]]:
    """Read and validate a YAML job file. Returns the config and the raw document (env refs unexpanded)."""
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise ConfigError(
                f"{p}: {size:,} bytes is too large for a job config (limit {MAX_CONFIG_BYTES:,} bytes)"
            )
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"{p}: cannot read config ({e.strerror or e})") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{p}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    try:
        raw = load_yaml(text, str(p))
    except RecursionError:
        raise ConfigError(f"{p}: the document is nested too deeply") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{p}: not valid YAML{where}: {getattr(e, 'problem', e)}") from None
    return parse_config(raw, overrides), raw if isinstance(raw, dict) else {}
