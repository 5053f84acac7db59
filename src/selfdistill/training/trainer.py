"""`selfdistill train`: supervised fine-tuning with a completion-only loss, LoRA or full.

The loop is plain PyTorch on top of accelerate, so the same code runs on one CPU or GPU and,
unchanged, under `accelerate launch` or `torchrun` (DDP; FSDP and DeepSpeed through an accelerate
config). The data order is a pure function of the seed, so every process knows every step's rows:
each step's loss is normalised by the step's response-token count over all processes, which makes
N processes with batch B/N compute the same update as one process with batch B, and makes a
resumed run recompute exactly the steps it had not finished.

    summary = run_train(TrainConfig(data="gsm8k_train.json", recipe="gsm8k", out="runs/vanilla"))
"""

from __future__ import annotations

import contextlib
import datetime
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from selfdistill.data import DEFAULT_TASK_PROMPT
from selfdistill.errors import SelfDistillError
from selfdistill.io import write_json_atomic
from selfdistill.training.checkpoint import (
    CHECKPOINTS,
    CONFIG_FILE,
    SUMMARY_FILE,
    RunDirectory,
    load_checkpoint,
    save_checkpoint,
)
from selfdistill.training.config import TrainConfig
from selfdistill.training.rows import (
    EncodeReport,
    TrainRow,
    encode_rows,
    epoch_steps,
    micro_batches,
    rows_digest,
)
from selfdistill.versions import package_versions

# A LoRA pass on the embedded model holds ~0.7 MB of activations per token. 1024-token passes kept
# the benchmark run at 3.5 GB peak RSS (2048: 4.4 GB) for ~7% less speed; GPUs have no default cap.
CPU_PASS_TOKENS = 1024


@dataclass
class TrainSummary:
    out: str
    steps: int
    epochs: float  # passes over the data actually made
    rows: int  # training rows after the truncation policy
    encode: EncodeReport
    load_summary: str
    final_loss: float
    train_tokens: int  # prompt + response tokens processed (padding excluded)
    seconds: float  # training time, summed over resumed segments
    trainable_params: int
    total_params: int
    resumed_from_step: int | None
    merged: str | None

    @property
    def tokens_per_s(self) -> float:
        return self.train_tokens / self.seconds if self.seconds else 0.0

    def to_dict(self) -> dict:
        values = asdict(self)
        values["encode"] = self.encode.to_dict()
        values["tokens_per_s"] = round(self.tokens_per_s, 2)
        return values


def run_train(config: TrainConfig) -> TrainSummary:
    import torch
    from accelerate import Accelerator
    from accelerate.utils import DistributedType, InitProcessGroupKwargs, set_seed

    from selfdistill.models import load_tokenizer, resolve_model
    from selfdistill.models.heads import split_lm_head
    from selfdistill.models.precision import use_bf16
    from selfdistill.training.loss import CompletionLoss

    device_type = "cuda" if torch.cuda.is_available() else "cpu"
    local_processes = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    if device_type == "cuda" and local_processes > torch.cuda.device_count():
        raise SelfDistillError(f"{local_processes} processes on this machine but {torch.cuda.device_count()} visible "
                               "GPU(s): launch one process per GPU, or set CUDA_VISIBLE_DEVICES='' to train on "
                               "the CPU")  # fmt: skip
    bf16 = use_bf16(config.precision, device_type)
    # the main process may spend long alone (merging, writing a checkpoint) while the others wait
    patience = InitProcessGroupKwargs(timeout=datetime.timedelta(hours=2))
    # bf16 autocast is applied in `_forward_backward`, not through accelerate's process-wide
    # mixed-precision state, which cannot change between two runs in one Python process
    accelerator = Accelerator(mixed_precision="no", cpu=device_type == "cpu", kwargs_handlers=[patience])
    if accelerator.distributed_type == DistributedType.DEEPSPEED:
        raise SelfDistillError("DeepSpeed is not supported: its engine steps the optimizer inside backward(), "
                               "which this loop's gradient accumulation does not fit; use DDP or FSDP")  # fmt: skip
    run = RunDirectory(Path(config.out))
    resume_from = run.prepare(resume=config.resume, overwrite=config.overwrite)
    for name, path in (("--model", config.model), ("--data", config.data)):
        if config.overwrite and run.contains(Path(path)):
            raise SelfDistillError(f"{name} {path} lies inside --out {run.path}, which --overwrite would delete")

    # bad data fails before the model loads; a distill/select output is read by its own layout and
    # trained under the recipe's task prompt, like the gold it was built from
    data = config.load_task(config.data, require_response=True)
    recipe = data.recipe
    default_template, default_style = recipe.task_prompt if recipe else DEFAULT_TASK_PROMPT
    template_name, style = config.template or default_template, config.style or default_style
    source = resolve_model(config.model)
    tokenizer = load_tokenizer(source)
    rows, encode_report = encode_rows(data.examples, tokenizer, template_name, style, config.max_length,
                                      config.truncation)  # fmt: skip
    # what is trained: the options, the seed's weights and the exact token rows
    identity = {**config.identity(), "model": source.fingerprint, "rows": rows_digest(rows)}
    if resume_from is not None:
        run.check_identity(identity)
    elif config.resume and accelerator.is_main_process:
        print(f"selfdistill: nothing to resume in {run.path}; starting from step 0")

    world = accelerator.num_processes
    pass_tokens = config.pass_tokens or (CPU_PASS_TOKENS if device_type == "cpu" else None)
    rows_per_step = config.batch_size * config.grad_accum * world
    steps_per_epoch = math.ceil(len(rows) / rows_per_step)
    total_steps = config.max_steps or math.ceil(config.epochs * steps_per_epoch)

    accelerator.wait_for_everyone()  # every process has checked --out before anything is written to it
    if config.overwrite and run.path.exists() and accelerator.is_main_process:
        run.clear()
    set_seed(config.seed)  # the same LoRA initialisation on every process
    model = _prepare_model(config, source, tokenizer, bf16, accelerator.device)
    trainable = [p for p in model.parameters() if p.requires_grad]
    counts = (sum(p.numel() for p in trainable), sum(p.numel() for p in model.parameters()))
    set_seed(config.seed + accelerator.process_index)  # dropout masks differ between processes
    optimizer = _optimizer(model, config)
    scheduler = _scheduler(optimizer, config, total_steps)
    causal_lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    model.eval()  # the head check compares two forward passes: no dropout
    split = split_lm_head(causal_lm, rows[0].ids, accelerator.device) is not None
    model.train()
    loss_model, optimizer = accelerator.prepare(CompletionLoss(model, split), optimizer)

    start_step, seconds_before, tokens_before = 0, 0.0, 0
    if resume_from is not None:
        checkpoint = load_checkpoint(resume_from, accelerator.process_index, world)
        _load_trainable(accelerator.unwrap_model(loss_model), checkpoint["trainable"], resume_from)
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        start_step, seconds_before, tokens_before = checkpoint["step"], checkpoint["seconds"], checkpoint["tokens"]

    log = None
    if accelerator.is_main_process:
        run.path.mkdir(parents=True, exist_ok=True)
        write_json_atomic({
            "identity": identity, "config": asdict(config), "versions": package_versions(),
            "model": source.fingerprint, "prompt": {"template": template_name, "style": style},
            "data": {"load": data.report.summary(), "encode": encode_report.summary(config.max_length)},
            "processes": world, "rows_per_step": rows_per_step, "pass_tokens": pass_tokens,
            "steps_per_epoch": steps_per_epoch, "total_steps": total_steps, "precision": "bf16" if bf16 else "fp32", "lm_head_at_loss_only": split,
            "trainable_params": counts[0], "total_params": counts[1],
        }, run.path / CONFIG_FILE)  # fmt: skip
        from selfdistill.training.outputs import TrainingLog

        log = TrainingLog(run.path, keep_until_step=start_step)

    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    plans: dict[int, list[list[int]]] = {}
    seconds, tokens, loss = seconds_before, tokens_before, math.nan
    bar = _progress(accelerator, total_steps, start_step)
    try:
        for step in range(start_step + 1, total_steps + 1):
            started = time.perf_counter()
            epoch, index = divmod(step - 1, steps_per_epoch)
            if epoch not in plans:
                plans = {epoch: epoch_steps(rows, rows_per_step, epoch, config.seed, config.group_by_length)}
            step_rows = plans[epoch][index]
            loss_tokens = sum(rows[i].num_loss_tokens for i in step_rows)
            step_tokens = sum(len(rows[i].ids) for i in step_rows)
            passes = micro_batches(step_rows, rows, config.batch_size, world, accelerator.process_index, pass_tokens)
            batches = [[rows[i] for i in chosen] for chosen in passes]
            loss = _forward_backward(accelerator, loss_model, batches, loss_tokens, pad_id, bf16)
            max_norm = config.max_grad_norm or math.inf
            # all parameters, not only the trainable ones: FSDP computes its sharded norm only then
            grad_norm = float(accelerator.clip_grad_norm_(loss_model.parameters(), max_norm))
            if not (math.isfinite(loss) and math.isfinite(grad_norm)):
                saved = run.checkpoints()
                broken = f"the loss is {loss}" if not math.isfinite(loss) else \
                    f"the gradient norm is {grad_norm} (loss {loss:.4g})"  # fmt: skip
                raise SelfDistillError(
                    f"training stopped at step {step} (epoch {epoch + 1}): {broken}; the weights were not "
                    "updated with it; lower --lr, or use --precision fp32"
                    + (f"; the last good checkpoint is {saved[-1]}" if saved else "")
                )
            lr = scheduler.get_last_lr()[0]
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            elapsed = time.perf_counter() - started
            seconds, tokens = seconds + elapsed, tokens + step_tokens
            if log is not None:
                log.write({"step": step, "epoch": round(step / steps_per_epoch, 4), "loss": loss, "lr": lr,
                           "grad_norm": grad_norm, "tokens": step_tokens, "loss_tokens": loss_tokens,
                           "tokens_per_s": round(step_tokens / elapsed, 2), "seconds": round(seconds, 3)})  # fmt: skip
            if bar is not None:
                bar.update(bar.task_ids[0], advance=1, description=f"train  loss {loss:.4f}")
            if step % config.save_steps == 0 and step < total_steps:
                state = {"trainable": _trainable_state(accelerator, loss_model),
                         "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                         "seconds": seconds, "tokens": tokens, "processes": world}  # fmt: skip
                save_checkpoint(run, step, state, accelerator, config.keep_checkpoints)
    finally:
        if bar is not None:
            bar.stop()
        if log is not None:
            log.close()

    return _finish(config, run, accelerator, loss_model, tokenizer, source, log, TrainSummary(
        out=str(run.path), steps=total_steps, epochs=round(total_steps / steps_per_epoch, 4), rows=len(rows),
        encode=encode_report, load_summary=data.report.summary(), final_loss=loss, train_tokens=tokens,
        seconds=round(seconds, 3), trainable_params=counts[0], total_params=counts[1],
        resumed_from_step=start_step or None, merged=None,
    ))  # fmt: skip


def _forward_backward(accelerator, loss_model, batches: list[list[TrainRow]], loss_tokens: int, pad_id: int,
                      bf16: bool) -> float:  # fmt: skip
    """Accumulate one step's gradients over this process's passes; returns the step's loss (all processes).

    Each pass's summed NLL is divided by the step's response-token count over all processes, so
    the gradient is that of the step's mean token loss however the rows are split into passes and
    processes (DDP averages over processes, hence the factor `num_processes`). Gradients are
    synchronised once, on the last pass.
    """
    import torch

    from selfdistill.training.loss import collate

    scale = accelerator.num_processes / loss_tokens
    nll_sum = torch.zeros((), device=accelerator.device)
    for k, batch in enumerate(batches):
        inputs = collate(batch, pad_id, accelerator.device) if batch else {}  # {}: a filler pass
        last = k == len(batches) - 1
        with contextlib.nullcontext() if last else accelerator.no_sync(loss_model):
            with torch.autocast(accelerator.device.type, dtype=torch.bfloat16, enabled=bf16):
                nll = loss_model(**inputs)
            accelerator.backward(nll * scale)
        nll_sum += nll.detach()
    return accelerator.reduce(nll_sum, "sum").item() / loss_tokens


def _prepare_model(config: TrainConfig, source, tokenizer, bf16: bool, device):
    """The model to train: LoRA adapters on a frozen seed, or every weight trainable (fp32 master weights).

    A LoRA run under bf16 keeps the frozen seed weights in bf16 (half the memory, no per-step
    casts) and the adapters in fp32, as PEFT does by default.
    """
    import torch

    from selfdistill.models import load_model

    dtype = torch.bfloat16 if bf16 and not config.full else torch.float32
    model, _ = load_model(source, device=str(device), dtype=dtype, tokenizer=tokenizer)
    del model.selfdistill_source  # its weights are about to change: never key a generation cache on them
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if config.full:
        model.requires_grad_(True)
    else:
        from selfdistill.training.adapters import attach_lora

        model = attach_lora(model, config.peft_config())
    return model


def _optimizer(model, config: TrainConfig):
    import torch

    # biases and norm weights (1-D) are not decayed, as is usual for transformers
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=config.lr)


def _scheduler(optimizer, config: TrainConfig, total_steps: int):
    from transformers import get_cosine_schedule_with_warmup

    return get_cosine_schedule_with_warmup(optimizer, math.ceil(config.warmup_ratio * total_steps), total_steps)


def _trainable_state(accelerator, loss_model) -> dict:
    names = {name for name, p in accelerator.unwrap_model(loss_model).named_parameters() if p.requires_grad}
    return {name: tensor for name, tensor in accelerator.get_state_dict(loss_model).items() if name in names}


def _load_trainable(module, tensors: dict, path: Path) -> None:
    expected = {name for name, p in module.named_parameters() if p.requires_grad}
    if set(tensors) != expected:
        raise SelfDistillError(f"checkpoint {path} does not match this model's trainable weights")
    module.load_state_dict(tensors, strict=False)


def _progress(accelerator, total_steps: int, start_step: int):
    if not accelerator.is_main_process:
        return None
    from selfdistill.progress import progress_bar

    bar = progress_bar()
    bar.add_task("train", total=total_steps, completed=start_step)
    bar.start()
    return bar


def _finish(config, run, accelerator, loss_model, tokenizer, source, log, summary: TrainSummary) -> TrainSummary:
    prefix = "model."  # CompletionLoss holds the trained model as `.model`
    state = {name[len(prefix) :]: tensor for name, tensor in accelerator.get_state_dict(loss_model).items()}
    if accelerator.is_main_process:
        from selfdistill.training.outputs import merge_adapter, plot_loss, save_weights

        save_weights(accelerator.unwrap_model(loss_model).model, state, tokenizer, run.path)
        if config.merge:
            merge_adapter(source.path, run.path, run.path / "merged")
            summary.merged = str(run.path / "merged")
        plot_loss(log.entries, run.path / "loss.png", f"{'full' if config.full else 'LoRA'} fine-tuning of "
                  f"{config.model} on {Path(config.data).name}")  # fmt: skip
        write_json_atomic(summary.to_dict(), run.path / SUMMARY_FILE)
        shutil.rmtree(run.path / CHECKPOINTS, ignore_errors=True)  # a finished run is never resumed
    accelerator.wait_for_everyone()
    return summary
