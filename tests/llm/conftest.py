"""Tiny tokenizers and models built locally (no downloads) for the LM tests."""

from __future__ import annotations

import pytest
import torch

TEXTS = ["hello world, the film was great and the plot was dull.", "the acting was awful; i loved the music!",
         "helloworld worldhello great greatness dullness"] * 20


def bpe_tokenizer(bos: bool = False, chat: bool = False):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<pad>", "<s>", "</s>"], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(TEXTS, trainer)
    if bos:  # Llama-style: the tokenizer itself prepends BOS
        tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>")
    if chat:
        fast.chat_template = ("{{ bos_token }}{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}"
                              "{% if add_generation_prompt %}<assistant>{% endif %}")
    return fast


def tiny_gpt2(vocab_size: int, seed: int = 0, dtype=torch.float32):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=vocab_size, n_positions=128, n_embd=32, n_layer=2, n_head=2,
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    return GPT2LMHeadModel(config).to(dtype).eval()


@pytest.fixture(scope="session")
def tokenizer():
    return bpe_tokenizer()


@pytest.fixture
def model(tokenizer):  # a fresh one per test: trainers move (and train) the model they are given in place
    return tiny_gpt2(len(tokenizer))


@pytest.fixture(scope="session")
def make_tokenizer():
    return bpe_tokenizer


@pytest.fixture(scope="session")
def make_model():
    return tiny_gpt2
