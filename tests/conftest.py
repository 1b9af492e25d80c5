"""Fixtures shared by the whole suite, built once per session (the expensive ones: experts, demonstrations,
tiny language models). A test that mutates what a fixture returns must copy it first."""

from __future__ import annotations

import os

import pytest


def pytest_configure(config):
    """Under pytest-xdist (``-n auto``: one worker per core) each worker runs torch on one thread; with
    torch's default of one thread per core, two workers on two cores would run four and slow each other."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch  # only in workers: a plain serial run keeps torch's default threads

        torch.set_num_threads(1)


@pytest.fixture
def torch_warns_every_time():
    """torch gives some warnings (a read-only numpy array, float() of a tensor that requires grad) once per
    process; here every time, so a warning from irlhf's code (an error under pyproject's filterwarnings) fails
    the test whatever ran before it."""
    import torch

    before = torch.is_warn_always_enabled()
    torch.set_warn_always(True)
    yield
    torch.set_warn_always(before)


# -- gymnasium: experts and demonstrations -------------------------------------------------------
@pytest.fixture(scope="session")
def cartpole_expert():
    """The scripted CartPole-v1 expert (``make_expert("CartPole-v1")``), a stateless callable."""
    from irlhf.rl.experts import make_expert

    return make_expert("CartPole-v1")


@pytest.fixture(scope="session")
def gym_demos():
    """gym_demos(env_id, n_episodes=1, seed=0) -> the scripted expert's ``collect_demos`` episodes, built once
    per (env_id, n_episodes, seed) for the session (Trajectory lists: copy before changing one)."""
    from irlhf.envs.gym import collect_demos
    from irlhf.rl.experts import make_expert

    cache: dict[tuple, list] = {}

    def demos(env_id: str, n_episodes: int = 1, seed: int = 0) -> list:
        key = (env_id, n_episodes, seed)
        if key not in cache:
            cache[key] = collect_demos(env_id, make_expert(env_id), n_episodes, seed=seed)
        return cache[key]

    return demos


@pytest.fixture(scope="session")
def cartpole_demos(gym_demos):
    """Four scripted-expert CartPole-v1 episodes (seed 0)."""
    return gym_demos("CartPole-v1", 4, 0)


# -- language models: tiny models and tokenizers ---------------------------------------------------
# Built locally from configs and small vocabularies (nothing downloaded). Models are returned fresh (a factory,
# or the function-scoped ``model``): trainers move and train the model they are given in place.
LM_TEXTS = ["hello world, the film was great and the plot was dull.", "the acting was awful; i loved the music!",
            "helloworld worldhello great greatness dullness"] * 20


def bpe_tokenizer(bos: bool = False, chat: bool = False):
    """A byte-level BPE tokenizer (vocabulary 300, <pad>=0 <s>=1 </s>=2) trained on LM_TEXTS; ``bos``: it
    prepends <s> itself (Llama-style); ``chat``: with a minimal chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers  # why: slow, optional
    from transformers import PreTrainedTokenizerFast  # why: slow, optional (llm extra)

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<pad>", "<s>", "</s>"], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(LM_TEXTS, trainer)
    if bos:
        tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>")
    if chat:
        fast.chat_template = ("{{ bos_token }}{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}"
                              "{% if add_generation_prompt %}<assistant>{% endif %}")
    return fast


def tiny_gpt2(vocab_size: int, seed: int = 0, dtype=None):
    """A fresh GPT-2 (2 layers, width 32, context 128, no dropout) drawn with ``seed``, in eval mode."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel  # why: slow, optional (llm extra)

    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=vocab_size, n_positions=128, n_embd=32, n_layer=2, n_head=2,
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    return GPT2LMHeadModel(config).to(dtype or torch.float32).eval()


@pytest.fixture(scope="session")
def tokenizer():
    """The shared BPE tokenizer (do not modify it: make_tokenizer() builds a private one)."""
    return bpe_tokenizer()


@pytest.fixture(scope="session")
def make_tokenizer():
    return bpe_tokenizer


@pytest.fixture(scope="session")
def make_model():
    """tiny_gpt2: make_model(vocab_size, seed=0, dtype=None) -> a fresh model."""
    return tiny_gpt2


@pytest.fixture
def model(tokenizer):
    return tiny_gpt2(len(tokenizer))


@pytest.fixture(scope="session")
def word_tokenizer():
    """The synthetic sentiment task's word-level tokenizer (irlhf.llm.tasks.sentiment.build_tokenizer)."""
    from irlhf.llm.tasks import sentiment

    return sentiment.build_tokenizer()
