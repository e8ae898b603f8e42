"""The reproducible recipe that pretrains ``ltsoups-mini`` contrastively on (image, caption) pairs of the world."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from ltsoups.checkpoint import save_checkpoint
from ltsoups.embedded.inputs import pixels_to_tensor, tokenize_unique
from ltsoups.embedded.model import MODEL_NAME, register_model_config
from ltsoups.embedded.recipe import PretrainConfig
from ltsoups.embedded.task import build_embedded_task, class_triples
from ltsoups.embedded.zero_shot import ZeroShotReport, per_class_accuracy, zero_shot_predictions, zero_shot_report
from ltsoups.provenance import hash_json
from ltsoups.world.captions import CAPTION_TEMPLATES, captions
from ltsoups.world.sampling import WorldSample, attribute_triples, balanced_rows, draw

StepCallback = Callable[[int, int, float], None]
"""Called after every optimiser step with (step, total steps, training loss)."""

_WEIGHT_DTYPES = {"float16": torch.float16, "float32": torch.float32}


class PretrainReport(BaseModel):
    """What a pretraining run achieved and how long it took."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    initial_loss: float = Field(description="Contrastive loss on the held-out pairs before training.")
    final_loss: float = Field(description="Contrastive loss on the held-out pairs after training.")
    zero_shot: ZeroShotReport = Field(description="Zero-shot accuracy of the saved weights on the embedded test split.")
    wall_seconds: float = Field(description="Wall time of the whole recipe, data generation included.")
    torch_threads: int = Field(description="torch intra-op threads the run used (bit-identity holds per thread count).")
    weights_path: str = Field(description="Where the weights were written.")


def pretraining_pairs(config: PretrainConfig) -> tuple[WorldSample, torch.Tensor, WorldSample, torch.Tensor]:
    """Training and held-out (sample, tokens) pairs: a balanced slice of the world, a pure function of the seed."""
    allowed = attribute_triples()
    if config.hold_out_task_classes:
        task = {tuple(row) for row in class_triples().tolist()}
        allowed = np.array([row for row in allowed.tolist() if tuple(row) not in task])
    sizes = (config.num_pairs, config.eval_pairs)
    pairs = []
    for seed, n in zip(np.random.SeedSequence([config.seed, 0x5EED]).spawn(2), sizes, strict=True):
        rng = np.random.default_rng(seed)
        sample = draw(int(rng.integers(2**63)), balanced_rows(rng, n, allowed), config.style)
        texts = captions(sample.scenes, rng.integers(0, len(CAPTION_TEMPLATES), size=n))
        pairs.append((sample, tokenize_unique(texts, MODEL_NAME)))
    (train, train_tokens), (held_out, held_out_tokens) = pairs
    return train, train_tokens, held_out, held_out_tokens


def pretrain(config: PretrainConfig, out_path: Path, on_step: StepCallback | None = None) -> PretrainReport:
    """Pretrain ``ltsoups-mini`` from scratch, save it as a pretrained-backbone checkpoint, and report."""
    import open_clip
    from open_clip.loss import ClipLoss

    started = time.perf_counter()
    register_model_config()
    train, train_tokens, held_out, held_out_tokens = pretraining_pairs(config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = open_clip.create_model(MODEL_NAME)
    loss_fn = ClipLoss()
    optimizer = _optimizer(model, config)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, _warmup_cosine(config.warmup_steps, config.steps))

    initial_loss = _mean_loss(model, loss_fn, held_out.pixels, held_out_tokens, config.batch_size)
    order = _batch_order(config)
    model.train()
    for step in range(config.steps):
        index = order[step]
        image_features, text_features, scale = model(pixels_to_tensor(train.pixels[index]), train_tokens[index])
        loss = loss_fn(image_features, text_features, scale)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        if on_step is not None:
            on_step(step + 1, config.steps, loss.item())
    model.eval()

    # Score exactly what ships: the weights after their round trip through the saved dtype.
    weights = {name: t.to(_WEIGHT_DTYPES[config.weights_dtype]) for name, t in model.state_dict().items()}
    model.load_state_dict(weights)
    final_loss = _mean_loss(model, loss_fn, held_out.pixels, held_out_tokens, config.batch_size)
    task = build_embedded_task(seed=config.task_seed)
    predictions = zero_shot_predictions(
        model, open_clip.get_tokenizer(MODEL_NAME), task.test.source.pixels, task.test.class_names
    )
    accuracy = per_class_accuracy(task.test.labels, predictions, task.test.num_classes)
    zero_shot = zero_shot_report(accuracy, task.train.class_counts())

    config_dict = config.model_dump(mode="json")
    save_checkpoint(
        out_path,
        weights,
        kind="pretrained-backbone",
        config=config_dict,
        config_sha256=hash_json(config_dict),
        model=MODEL_NAME,
        zero_shot=zero_shot.model_dump(mode="json"),
        contrastive_loss={"initial": initial_loss, "final": final_loss},
        torch_threads=torch.get_num_threads(),
    )
    return PretrainReport(
        initial_loss=initial_loss,
        final_loss=final_loss,
        zero_shot=zero_shot,
        wall_seconds=time.perf_counter() - started,
        torch_threads=torch.get_num_threads(),
        weights_path=str(out_path),
    )


def _optimizer(model: torch.nn.Module, config: PretrainConfig) -> torch.optim.AdamW:
    # As in open_clip's training: no decay on gains, biases, embeddings and the logit scale.
    decayed, exempt = [], []
    for name, parameter in model.named_parameters():
        no_decay = parameter.ndim < 2 or "embedding" in name or "logit_scale" in name
        (exempt if no_decay else decayed).append(parameter)
    groups = [{"params": decayed, "weight_decay": config.weight_decay}, {"params": exempt, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=config.lr, betas=(0.9, 0.98), eps=1e-6)


def _warmup_cosine(warmup_steps: int, total_steps: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    return factor


def _batch_order(config: PretrainConfig) -> np.ndarray:
    """Pair indices of every step's batch: epochs of shuffled pairs, cut into batches."""
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, 0xBA7C]))
    batches_per_epoch = config.num_pairs // config.batch_size
    epochs = math.ceil(config.steps / batches_per_epoch)
    order = [rng.permutation(config.num_pairs)[: batches_per_epoch * config.batch_size] for _ in range(epochs)]
    return np.concatenate(order).reshape(-1, config.batch_size)[: config.steps]


@torch.no_grad()
def _mean_loss(
    model: torch.nn.Module, loss_fn: torch.nn.Module, pixels: np.ndarray, tokens: torch.Tensor, batch_size: int
) -> float:
    """Contrastive loss averaged over consecutive batches of held-out pairs."""
    was_training = model.training
    model.eval()
    losses = [
        float(loss_fn(*model(pixels_to_tensor(pixels[start : start + batch_size]), tokens[start : start + batch_size])))
        for start in range(0, len(pixels) - batch_size + 1, batch_size)
    ]
    model.train(was_training)
    return float(np.mean(losses))
