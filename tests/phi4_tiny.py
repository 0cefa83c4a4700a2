"""A tiny random-weight Phi-4-multimodal for CPU tests: the same config, model and processor classes as the
real checkpoint (Phi4MultimodalConfig / ForCausalLM / Processor), with a few layers, small hidden sizes,
small vision and audio encoders, and a BPE tokenizer trained in memory with the model's special tokens.
Saved to a folder and loaded through the engine's own loading code. Random weights give random text:
tests assert the mechanics, never the words."""

from __future__ import annotations

from pathlib import Path

SPECIALS = ["<|endoftext|>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>", "<|image|>", "<|audio|>"]
CORPUS = [
    "Convert this page to Markdown. Transcribe the audio clip into text.",
    "Describe the image and the text in it. Keep headings, lists and tables.",
    "the quick brown fox jumps over the lazy dog 0123456789 | - # *",
]


def build_tiny_phi4(folder: Path) -> Path:
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import (
        Phi4MultimodalAudioConfig,
        Phi4MultimodalConfig,
        Phi4MultimodalFeatureExtractor,
        Phi4MultimodalForCausalLM,
        Phi4MultimodalImageProcessor,
        Phi4MultimodalProcessor,
        Phi4MultimodalVisionConfig,
        PreTrainedTokenizerFast,
    )

    bpe = Tokenizer(models.BPE(unk_token=None))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.train_from_iterator(
        CORPUS * 4,
        trainers.BpeTrainer(
            vocab_size=400, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
        ),
    )
    from tokenizers import decoders

    bpe.decoder = decoders.ByteLevel()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token="<|endoftext|>",
        eos_token="<|end|>",
        pad_token="<|endoftext|>",
        extra_special_tokens={"image_token": "<|image|>", "audio_token": "<|audio|>"},
        padding_side="left",
    )
    ids = {t: tok.convert_tokens_to_ids(t) for t in SPECIALS}
    torch.manual_seed(0)
    config = Phi4MultimodalConfig(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        original_max_position_embeddings=4096,
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=[ids["<|end|>"], ids["<|endoftext|>"]],
        pad_token_id=ids["<|endoftext|>"],
        vision_config=Phi4MultimodalVisionConfig(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
            image_token_id=ids["<|image|>"],
        ),
        audio_config=Phi4MultimodalAudioConfig(
            hidden_size=32, intermediate_size=64, num_blocks=2, num_attention_heads=2,
            ext_pw_out_channel=32, depthwise_separable_out_channel=32, nemo_conv_channels=32,
            audio_token_id=ids["<|audio|>"],
        ),
    )  # fmt: skip
    model = Phi4MultimodalForCausalLM(config).eval()
    processor = Phi4MultimodalProcessor(
        image_processor=Phi4MultimodalImageProcessor(dynamic_hd=4),
        audio_processor=Phi4MultimodalFeatureExtractor(),
        tokenizer=tok,
    )
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def tiny_engine_config(model: Path) -> dict:
    """The job config's `engine` section for pipeline runs on the tiny model (short generations)."""
    return {"name": "phi4", "phi4": {"model": str(model), "max_new_tokens": 4, "max_crops": 1}}
