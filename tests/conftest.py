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


def pytest_collection_modifyitems(config, items):
    """Tests marked ``heavy`` first (stable otherwise): xdist hands tests out in this order, and a 20 s test
    collected last (tests/test_cli.py sorts after the sub-folders) leaves one worker running alone at the end."""
    items.sort(key=lambda item: item.get_closest_marker("heavy") is None)


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


# -- road networks -----------------------------------------------------------------------------------------
ROAD_ORIGIN_LONLAT = (24.94, 60.17)  # central Helsinki, so distances look like a city's
M_PER_DEG_LAT = 6371008.8 * 3.141592653589793 / 180


def grid_network(rows: int = 4, cols: int = 5, *, spacing_m: float = 250.0, jitter_m: float = 25.0, seed: int = 7,
                 arterial_rows: tuple[int, ...] = (1,), arterial_cols: tuple[int, ...] = (2,),
                 varied_speeds: bool = False, name: str = "grid"):
    """rows x cols intersections ``spacing_m`` apart, jittered by up to ``jitter_m`` (fixed seed: distinct edge
    lengths, so shortest routes have no ties), two-way streets: the arterial rows/columns are 2-lane primary roads
    at 50 km/h, the rest 1-lane residential at 30 km/h (``varied_speeds``: +10 km/h on a random half of the edges,
    so minutes are not a linear function of the per-class km). Node ids are 1000 + row * cols + col."""
    import numpy as np

    from irlhf.envs.roads import RoadNetwork

    rng = np.random.default_rng(seed)
    r, c = np.divmod(np.arange(rows * cols), cols)
    xy = np.stack([c * spacing_m, r * spacing_m], axis=1) + rng.uniform(-jitter_m, jitter_m, (rows * cols, 2))
    lat = ROAD_ORIGIN_LONLAT[1] + xy[:, 1] / M_PER_DEG_LAT
    lon = ROAD_ORIGIN_LONLAT[0] + xy[:, 0] / (M_PER_DEG_LAT * np.cos(np.radians(ROAD_ORIGIN_LONLAT[1])))
    node = np.arange(rows * cols).reshape(rows, cols)
    horizontal = np.stack([node[:, :-1].ravel(), node[:, 1:].ravel()], axis=1)
    vertical = np.stack([node[:-1, :].ravel(), node[1:, :].ravel()], axis=1)
    pairs = np.concatenate([horizontal, vertical])
    big = np.concatenate([np.isin(r[horizontal[:, 0]], arterial_rows), np.isin(c[vertical[:, 0]], arterial_cols)])
    tail = np.concatenate([pairs[:, 0], pairs[:, 1]])
    head = np.concatenate([pairs[:, 1], pairs[:, 0]])
    big = np.concatenate([big, big])
    length = np.linalg.norm(xy[tail] - xy[head], axis=1)
    speed = np.where(big, 50.0, 30.0) + (10.0 * rng.integers(0, 2, len(tail)) if varied_speeds else 0.0)
    return RoadNetwork.from_edges(
        node_ids=1000 + np.arange(rows * cols), lonlat=np.stack([lon, lat], axis=1), tail=tail, head=head,
        length_m=length, road_class=["primary" if b else "residential" for b in big],
        speed_kmh=speed, lanes=np.where(big, 2.0, 1.0), name=name)


@pytest.fixture(scope="session")
def road_grid():
    """grid_network: road_grid(rows, cols, ...) -> a fresh RoadNetwork (see ``grid_network``)."""
    return grid_network


@pytest.fixture(scope="session")
def small_grid():
    """A deterministic RoadNetwork of 4 x 5 jittered intersections, 2 road classes (one primary row and column,
    2 lanes, 50 km/h; residential elsewhere), two-way streets: 20 nodes, 62 directed edges (states)."""
    return grid_network(4, 5)
