"""Extraction from the language model of a multimodal LLM (LLaVA, LLaVA-NeXT, Gemma 3, Idefics3 ...:
`vsae.models.families.mllm`): image-token and text-token rows in one store.

For the shared vision/language features of Olson et al. the SAE reads the residual stream of the
multimodal model's *language model* on two kinds of input:

- image rows: the model's own chat prompt (its chat template: "USER: <image>\\n<question> ASSISTANT:"
  for llava-1.5) with an image, run through the whole model (processor, projector, LM) exactly as
  its model card drives it; one row per position of the model's image token (token index =
  0..P-1 in sequence order). The processor decides the layout: LLaVA-1.5 and Gemma 3 a fixed number
  of tokens per image (Gemma 3 between its begin/end-of-image tokens, which are not image rows);
  LLaVA-NeXT the base tile's tokens, then the any-resolution grid's with a newline token per row;
  Idefics3 / SmolVLM one block per tile, the global image's last. Where P depends on the image's
  size (any-resolution tiles: `MllmLayout.variable_image_tokens`), it is counted per image by the
  processor before the run (so that the balance plan is known); otherwise on the first image;
- text rows: the image's caption alone (tokenizer with its special tokens, right-padded, no image),
  run through the same model; one row per caption token (token index = position in the caption's
  token sequence; special tokens such as ``<s>`` and padding excluded);
- teacher-forced text rows (``text_kinds`` with ``teacher-forced``): the same caption tokens read as
  the answer to the image prompt, with the image in context (the prompt's token ids, then the
  caption's own tokens); one row per kept caption token, token index as for the caption-alone rows.

Item ``i`` (the image at position ``i`` of ``--data``) gives both its image rows and the rows of
its caption, so the store's image index is ``i`` for both. Two extra per-row columns
(`vsae.store.columns`) say which is which: ``modality`` (int8: 0 image, 1 text) and ``token_id``
(int32 vocabulary id of a text row's token, -1 for image rows); ``tokens.json`` maps ids to strings.
With teacher-forced rows a third, ``text_kind`` (int8: -1 image, 0 caption alone, 1 teacher-forced),
says which text rows are which (provenance ``text_kinds``); each kind keeps the same caption tokens.

Balance: with ``balance=True`` (default) the store holds exactly as many image rows as text rows —
the larger modality is subsampled to the size of the smaller by a seeded choice of rows made before
anything is run (so a resumed run keeps the same rows). Images that fail to decode are skipped with
their caption (the counts then differ by those items' planned rows).
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from vsae.data import Source, open_source
from vsae.data.decode import DecodeError, load_image
from vsae.errors import VsaeError
from vsae.extract.settings import TEXT_KINDS
from vsae.extract.settings import MllmExtractConfig as MllmExtractConfig  # torch-free (the CLI's options)
from vsae.models import Capture, LoadedModel, TokenSelection, capture, load, parse_selection, resolve_hook
from vsae.models.families.mllm import LAYOUTS, conversation, processor_images
from vsae.models.families.mllm import image_token_id as mllm_image_token_id
from vsae.models.hooks import StopForward
from vsae.models.tokens import random_positions
from vsae.store.columns import ColumnStoreWriter
from vsae.store.manifest import atomic_write_json
from vsae.store.safe_io import check_output, output_lock

IMAGE, TEXT = 0, 1
COLUMNS = {
    "modality": "int8 per row: 0 = image token (token index = patch position), 1 = text token "
    "(token index = position in the caption's token sequence)",
    "token_id": "int32 per row: vocabulary id of a text row's token (tokens.json), -1 for image rows",
}
TEXT_KIND_COLUMN = (
    "int8 per row: -1 image, 0 caption alone, 1 teacher-forced (the caption after the image prompt)"
)


# -- inputs ----------------------------------------------------------------------------------------
def load_processor(model: str) -> Any:
    """The model's processor (image processor + tokenizer + chat template); VsaeError if absent."""
    import transformers as T

    try:
        proc = T.AutoProcessor.from_pretrained(model)
    except (OSError, ValueError, TypeError) as e:
        raise VsaeError(
            f"cannot load the processor of {model!r} ({str(e).splitlines()[0][:120]}); a LLaVA directory "
            f"needs processor_config.json, the tokenizer and the chat template (save_pretrained of a LlavaProcessor)"
        ) from None
    if getattr(proc, "image_token", None) is None or getattr(proc, "chat_template", None) is None:
        raise VsaeError(
            f"{model!r} has no LlavaProcessor with an image token and a chat template "
            f"(got {type(proc).__name__}); save the model's processor next to it"
        )
    return proc


def image_prompt(processor: Any, question: str) -> str:
    """The model's chat prompt with one image and `question`, ending in the generation prompt."""
    return processor.apply_chat_template(conversation(question), add_generation_prompt=True)


def read_captions(source: Any, captions: str | None) -> list[str]:
    """One caption per item of the image `source` (see `MllmExtractConfig.captions`)."""
    if captions is not None:
        items = list(open_source(captions, None, "text").items)
        if len(items) != len(source):
            raise VsaeError(
                f"--captions {captions} has {len(items)} captions for {len(source)} images; "
                f"give one caption per image, in the order of --data"
            )
        return items
    root = Path(source.root)
    attr = root / "attributes.json"
    if source.kind != "folder" or not attr.is_file():
        raise VsaeError(
            f"no captions for {source.root}: pass --captions FILE (one caption per image, in --data order); "
            f"only a world export (DATA/attributes.json) has them built in"
        )
    by_path = {r["path"]: r.get("caption") for r in json.loads(attr.read_text())}
    out = []
    for p in source.items:
        c = by_path.get(str(Path(p).relative_to(root)))
        if not c:
            raise VsaeError(f"{attr} has no caption for {p}; pass --captions FILE instead")
        out.append(c)
    return out


def sample_items(n_total: int, n: int | None, seed: int) -> np.ndarray:
    """Sorted indices of a seeded random sample of `n` of `n_total` items (all when n is None)."""
    if n is None or n >= n_total:
        return np.arange(n_total, dtype=np.int64)
    if n < 1:
        raise VsaeError(f"--n-images {n}: must be at least 1")
    rng = np.random.default_rng([int(seed), 11])
    return np.sort(rng.choice(n_total, size=n, replace=False)).astype(np.int64)


def caption_positions(
    tokenizer: Any, captions: list[str], max_length: int
) -> tuple[list[list[int]], list[np.ndarray]]:
    """Token ids of each caption (with the tokenizer's special tokens, truncated) and the positions
    of its own tokens (special tokens excluded)."""
    enc = tokenizer(
        list(captions),
        add_special_tokens=True,
        truncation=True,
        max_length=max_length,
        return_special_tokens_mask=True,
        return_attention_mask=False,
        return_token_type_ids=False,
    )
    ids = [list(x) for x in enc["input_ids"]]
    pos = [np.flatnonzero(np.asarray(m) == 0).astype(np.int64) for m in enc["special_tokens_mask"]]
    return ids, pos


def balance_plan(n_img_I: np.ndarray, n_txt_I: np.ndarray, seed: int, balance: bool) -> tuple[list, list]:
    """Per item, a keep-mask over its planned image rows and over its text rows.

    With `balance`, the modality with more rows in total keeps a seeded random subset of exactly
    as many rows as the other has (rows of the smaller modality are all kept)."""
    keep_img = [np.ones(int(k), bool) for k in n_img_I]
    keep_txt = [np.ones(int(k), bool) for k in n_txt_I]
    tot_i, tot_t = int(np.sum(n_img_I)), int(np.sum(n_txt_I))
    if not balance or tot_i == tot_t:
        return keep_img, keep_txt
    big, counts, n_keep = (keep_img, n_img_I, tot_t) if tot_i > tot_t else (keep_txt, n_txt_I, tot_i)
    flat = np.zeros(int(np.sum(counts)), bool)
    flat[np.random.default_rng([int(seed), 12]).choice(len(flat), size=n_keep, replace=False)] = True
    off = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    for i in range(len(big)):
        big[i] = flat[off[i] : off[i + 1]]
    return keep_img, keep_txt


# -- forward ---------------------------------------------------------------------------------------
def forward_lm(lm: LoadedModel, cap: Capture, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Run the whole LLaVA on `inputs` under the capture `cap` of its language model; the captured
    [B, T, d] tensors per hook."""
    moved = lm.to_device(inputs)
    assert isinstance(moved, dict)
    # The capture ends the pass after its last hook.
    with torch.inference_mode(), contextlib.suppress(StopForward):
        lm.full_model(**moved, use_cache=False)
    return dict(cap.outputs)


def _pad_right(ids: list[list[int]], pad_id: int) -> dict[str, torch.Tensor]:
    T = max(len(x) for x in ids)
    input_ids = torch.full((len(ids), T), int(pad_id), dtype=torch.long)
    mask = torch.zeros((len(ids), T), dtype=torch.long)
    for j, x in enumerate(ids):
        input_ids[j, : len(x)] = torch.as_tensor(x, dtype=torch.long)
        mask[j, : len(x)] = 1
    return {"input_ids": input_ids, "attention_mask": mask}


def count_image_tokens(proc: Any, prompt: str, image_token_id: int, image: Image.Image | None = None) -> int:
    """Image tokens the processor puts in a prompt (on `image`, else a blank one); VsaeError if none."""
    image = image if image is not None else Image.new("RGB", (64, 64), (128, 128, 128))
    probe = proc(images=processor_images([image]), text=[prompt], return_tensors="pt")
    n = int((probe["input_ids"] == image_token_id).sum())
    if n == 0:
        raise VsaeError(
            f"the prompt {prompt!r} holds no image token {proc.image_token!r}; check the processor"
        )
    return n


def image_token_positions(
    input_ids_BT: torch.Tensor, image_token_id: int, n_expected: np.ndarray
) -> list[np.ndarray]:
    """Per prompt, the sequence positions of its image tokens (VsaeError unless n_expected[b] each)."""
    hit = (input_ids_BT == image_token_id).cpu().numpy()
    counts = hit.sum(1)
    if np.any(counts != np.asarray(n_expected)):
        raise VsaeError(
            f"prompts hold {counts.tolist()} image tokens, expected {np.asarray(n_expected).tolist()}; "
            f"the processor and the model config disagree on the image sequence length"
        )
    return [np.flatnonzero(h).astype(np.int64) for h in hit]


def image_token_counts(
    proc: Any,
    prompt: str,
    image_token_id: int,
    source: Source,
    items: np.ndarray,
    variable: bool,
    max_pixels: int | None,
) -> np.ndarray:
    """Image tokens of each sampled item's prompt: counted per image by the processor when the
    model's count depends on the image (0 for an image that does not decode), else once."""
    if not variable:
        return np.full(
            len(items), count_image_tokens(proc, prompt, image_token_id, _first_image(source, items))
        )
    out = np.zeros(len(items), np.int64)
    for j, i in enumerate(items):
        try:
            out[j] = count_image_tokens(
                proc, prompt, image_token_id, load_image(source.items[int(i)], max_pixels)
            )
        except DecodeError:
            continue
    return out


# -- the pipeline ----------------------------------------------------------------------------------
def _model_dtype(cfg: MllmExtractConfig) -> str:
    if cfg.model_dtype is not None:
        return cfg.model_dtype
    return "float32" if str(cfg.device).startswith("cpu") else cfg.dtype


def _image_selection(text: str) -> TokenSelection:
    sel = parse_selection(text)
    if sel.kind not in ("all", "patches", "random"):
        raise VsaeError(f"--image-tokens {text}: use all or random:K (image-token positions per image)")
    return sel


def extract_mllm(cfg: MllmExtractConfig) -> Path:
    """Run the extraction described by `cfg` (resuming if the store exists); return the output path."""
    if not cfg.hooks:
        raise VsaeError("no hook given; pass --hook, e.g. --hook resid.0")
    if cfg.batch_size < 1:
        raise VsaeError(f"--batch-size {cfg.batch_size}: must be at least 1")
    sel = _image_selection(cfg.image_tokens)
    bad = [k for k in cfg.text_kinds if k not in TEXT_KINDS]
    if bad or not cfg.text_kinds:
        raise VsaeError(f"--text-kind {','.join(bad) or '(none)'}: use {' and/or '.join(TEXT_KINDS)}")
    if cfg.threads is not None:
        torch.set_num_threads(max(1, cfg.threads))
    source = open_source(cfg.data, cfg.split, "image")  # bad data fails before the model loads
    captions = read_captions(source, cfg.captions)
    items = sample_items(len(source), cfg.n_images, cfg.seed)
    _require_mllm(cfg.model)
    lm = load(cfg.model, device=cfg.device, dtype=_model_dtype(cfg), tower="language")
    lm.full_model.to(lm.device)
    proc = load_processor(cfg.model)
    tok = proc.tokenizer
    image_token_id = mllm_image_token_id(lm.full_model.config)
    prompt = image_prompt(proc, cfg.question)

    variable = LAYOUTS[lm.family].variable_image_tokens
    n_patch = image_token_counts(proc, prompt, image_token_id, source, items, variable, cfg.max_pixels)
    n_min = int(n_patch[n_patch > 0].min()) if np.any(n_patch > 0) else 0
    if sel.kind == "random" and sel.k > n_min:
        raise VsaeError(
            f"--image-tokens random:{sel.k} asks for more than the {n_min} image tokens of an image"
        )
    k_img = np.minimum(n_patch, sel.k) if sel.kind == "random" else n_patch
    max_len = int(getattr(lm.model.config, "max_position_embeddings", 2048))
    cap_ids, cap_pos = caption_positions(tok, [captions[i] for i in items], max_len)
    keep_img, keep_txt = balance_plan(k_img, np.array([len(p) for p in cap_pos]), cfg.seed, cfg.balance)

    hooks = list(dict.fromkeys(resolve_hook(lm, h).name for h in cfg.hooks))
    prov_common = {
        **lm.provenance,
        "extraction": "mllm_lm",
        "question": cfg.question,
        "prompt": prompt,
        "image_tokens": str(sel),
        "n_image_tokens": int(n_patch[0]) if not variable else "per image (any-resolution tiles)",
        "balance": "equal rows: seeded subsample of the larger modality" if cfg.balance else "none",
        "captions": cfg.captions or "DATA/attributes.json",
        "model_dtype": _model_dtype(cfg),
        "data": source.describe(),
        "n_images": int(len(items)),
        "sampled": cfg.n_images is not None and cfg.n_images < len(source),
        "seed": cfg.seed,
        "columns": COLUMNS,
    }
    if "teacher-forced" in cfg.text_kinds:  # caption-only stores keep their old layout
        prov_common["text_kinds"] = list(dict.fromkeys(cfg.text_kinds))
        prov_common["columns"] = {**COLUMNS, "text_kind": TEXT_KIND_COLUMN}
    table = {**source.table(), "items_used": items.tolist(), "captions": [captions[i] for i in items]}
    files = {"images.json": table, "tokens.json": _vocab(tok)}
    plan = _Plan(items, cap_ids, cap_pos, keep_img, keep_txt, sel, n_patch, cfg.seed)
    with output_lock(Path(cfg.out)):  # one writer per --out: a second extract-mllm is refused, naming it
        _write_stores(lm, cfg, proc, prompt, image_token_id, hooks, prov_common, files, plan, source, items)
    return Path(cfg.out)


def _write_stores(
    lm: LoadedModel,
    cfg: MllmExtractConfig,
    proc: Any,
    prompt: str,
    image_token_id: int,
    hooks: list[str],
    prov_common: dict[str, Any],
    files: dict[str, Any],
    plan: _Plan,
    source: Source,
    items: np.ndarray,
) -> None:
    """The extraction itself, under the output lock: open (or resume) the writers, run the batches, close."""
    tok = proc.tokenizer
    writers = _open_writers(
        lm, cfg, hooks, prov_common, files, _pad_right(plan.cap_ids[:1], tok.pad_token_id or 0)
    )

    start = min(w.next_image for w in writers.values())
    first = int(np.searchsorted(items, start))
    bar = tqdm(
        total=len(items),
        initial=first,
        unit="img",
        desc=f"extract-mllm {','.join(hooks)}",
        disable=not cfg.progress,
        dynamic_ncols=True,
    )
    with capture(lm, hooks) as cap:
        for b0 in range(first, len(items), cfg.batch_size):
            b1 = min(b0 + cfg.batch_size, len(items))
            ok = _decode(source, items, b0, b1, cfg.max_pixels, writers)
            if ok:
                _forward_batch(lm, cap, proc, prompt, image_token_id, plan, ok, writers, cfg.text_kinds)
            upto = int(items[b1]) if b1 < len(items) else len(source)
            for w in writers.values():
                if upto > w.next_image:
                    w.mark_images_done(upto)
            bar.update(b1 - b0)
    bar.close()
    for w in writers.values():
        if not w.complete:
            w.close()


def _open_writers(
    lm: LoadedModel,
    cfg: MllmExtractConfig,
    hooks: list[str],
    provenance: dict[str, Any],
    files: dict[str, Any],
    probe_inputs: dict[str, torch.Tensor],
) -> dict[str, ColumnStoreWriter]:
    """One store writer per hook (OUT itself for one hook, OUT/<hook>/ for several), created or
    resumed, with the JSON `files` (images.json, tokens.json) written beside each once."""
    with capture(lm, hooks) as cap:  # the width of each hook
        widths = forward_lm(lm, cap, probe_inputs)
    out, writers = Path(cfg.out), {}
    paths = {h: out if len(hooks) == 1 else out / h.replace(":", "_").replace("/", "_") for h in hooks}
    for path in paths.values():  # before anything is written: a linked images.json would name other images
        for name in files:
            check_output(path / name)
    for h, path in paths.items():
        writers[h] = ColumnStoreWriter.create_or_resume(
            path,
            d=int(widths[h].shape[-1]),
            dtype=cfg.dtype,
            provenance={**provenance, "hook": h, "tokens": f"image:{provenance['image_tokens']}+text:all"},
            rows_per_shard=cfg.rows_per_shard,
            start_image=0,
            end_image=int(provenance["data"]["n_items"]),
        )
        for name, obj in files.items():
            if not (path / name).exists():
                atomic_write_json(path / name, obj)
    return writers


def _first_image(source: Source, items: np.ndarray) -> Image.Image | None:
    """The first sampled image that decodes (it sets the image-token count), or None."""
    for i in items[:32]:
        try:
            return load_image(source.items[int(i)])
        except DecodeError:
            continue
    return None


def _require_mllm(model: str) -> None:
    """One-line error for a model that is not a multimodal LLM (unreadable configs are `load`'s)."""
    import transformers as T

    try:
        mt = T.AutoConfig.from_pretrained(model).model_type
    except (OSError, ValueError):
        return
    if mt not in LAYOUTS:
        raise VsaeError(
            f"{model} is a {mt} model; extract-mllm needs a LLaVA or another multimodal LLM "
            f"({', '.join(LAYOUTS)}) to run its language model on image and text tokens"
        )


def _vocab(tok: Any) -> dict[str, str]:
    """Vocabulary id -> token string (tokens.json), to name the words of text rows."""
    return {str(i): t for i, t in enumerate(tok.convert_ids_to_tokens(list(range(len(tok)))))}


@dataclass(frozen=True)
class _Plan:
    """Which rows each sampled item (position j in `items`) contributes."""

    items: np.ndarray
    cap_ids: list[list[int]]
    cap_pos: list[np.ndarray]
    keep_img: list[np.ndarray]
    keep_txt: list[np.ndarray]
    sel: TokenSelection
    n_patch: np.ndarray
    seed: int

    def patches(self, j: int) -> np.ndarray:
        """Kept patch positions (0..P-1) of item j."""
        i = int(self.items[j])
        if self.sel.kind == "random":
            pos = random_positions(self.seed, i, int(self.n_patch[j]), self.sel.k)
        else:
            pos = np.arange(int(self.n_patch[j]), dtype=np.int64)
        return pos[self.keep_img[j]]

    def text(self, j: int) -> np.ndarray:
        """Kept caption token positions of item j."""
        return self.cap_pos[j][self.keep_txt[j]]


def _decode(
    source: Source,
    items: np.ndarray,
    b0: int,
    b1: int,
    max_pixels: int | None,
    writers: dict[str, ColumnStoreWriter],
) -> list[tuple[int, Image.Image]]:
    """(j, image) of the items [b0, b1) that decode; the others are recorded as skipped."""
    ok: list[tuple[int, Image.Image]] = []
    for j in range(b0, b1):
        i, path = int(items[j]), source.items[int(items[j])]
        try:
            ok.append((j, load_image(path, max_pixels)))
        except DecodeError as e:
            for w in writers.values():
                if i >= w.next_image:
                    w.skip(i, path, str(e))
    return ok


def _forward_batch(
    lm: LoadedModel,
    cap: Capture,
    proc: Any,
    prompt: str,
    image_token_id: int,
    plan: _Plan,
    ok: list[tuple[int, Image.Image]],
    writers: dict[str, ColumnStoreWriter],
    cfg_kinds: tuple[str, ...] = ("caption",),
) -> None:
    """Forward the images (with the question) and then the captions of `ok` (alone, and/or
    teacher-forced after the image prompt); buffer their rows, ordered by item, image rows before
    text rows (caption-alone rows before teacher-forced ones)."""
    js = [j for j, _ in ok]
    # Prompts with other image-token counts (any-resolution tiles) are padded on the right: the
    # causal LM's real tokens then keep the positions and values they have unpadded.
    inputs = proc(
        images=processor_images([im for _, im in ok]),
        text=[prompt] * len(ok),
        return_tensors="pt",
        padding=True,
        padding_side="right",
    )
    pos_BP = image_token_positions(inputs["input_ids"], image_token_id, plan.n_patch[js])
    img_out = forward_lm(lm, cap, dict(inputs))
    pad = proc.tokenizer.pad_token_id or 0
    kinds = [k for k in TEXT_KINDS if k in cfg_kinds]
    txt_out: dict[str, tuple[dict[str, torch.Tensor], list[int] | None]] = {}
    if "caption" in kinds:
        txt_out["caption"] = forward_lm(lm, cap, _pad_right([plan.cap_ids[j] for j in js], pad)), None
    if "teacher-forced" in kinds:
        txt_out["teacher-forced"] = _teacher_forced(lm, cap, inputs, plan, js, pad)
    for h, w in writers.items():
        rows, img, tok, mod, tid, kind = [], [], [], [], [], []
        for b, j in enumerate(js):
            i = int(plan.items[j])
            if i < w.next_image:  # this store was already ahead (killed between two stores' commits)
                continue
            patch, tpos = plan.patches(j), plan.text(j)
            rows += [img_out[h][b, torch.as_tensor(pos_BP[b][patch])]]
            img += [np.full(len(patch) + len(txt_out) * len(tpos), i, np.int64)]
            tok += [patch]
            mod += [np.full(len(patch), IMAGE, np.int8)]
            tid += [np.full(len(patch), -1, np.int32)]
            kind += [np.full(len(patch), -1, np.int8)]
            for k, (out, offset) in txt_out.items():
                at = tpos if offset is None else offset[b] + np.searchsorted(plan.cap_pos[j], tpos)
                rows += [out[h][b, torch.as_tensor(at)]]
                tok += [tpos]
                mod += [np.full(len(tpos), TEXT, np.int8)]
                tid += [np.asarray(plan.cap_ids[j], np.int32)[tpos]]
                kind += [np.full(len(tpos), TEXT_KINDS.index(k), np.int8)]
        if rows:
            cols: dict[str, np.ndarray] = {"modality": np.concatenate(mod), "token_id": np.concatenate(tid)}
            if "teacher-forced" in kinds:
                cols["text_kind"] = np.concatenate(kind)
            toks = np.concatenate(tok).astype(np.int64)
            w.add_columns(torch.cat(rows).float(), np.concatenate(img), toks, cols)


def _teacher_forced(
    lm: LoadedModel, cap: Capture, inputs: Any, plan: _Plan, js: list[int], pad: int
) -> tuple[dict[str, torch.Tensor], list[int]]:
    """The captured outputs of each image prompt followed by its caption's own tokens (special
    tokens dropped), and per prompt the sequence position where its caption starts."""
    mask = inputs["attention_mask"]
    lens = [int(m.sum()) for m in mask]
    ids = [
        inputs["input_ids"][b, : lens[b]].tolist() + [plan.cap_ids[j][p] for p in plan.cap_pos[j]]
        for b, j in enumerate(js)
    ]
    extra = {k: v for k, v in dict(inputs).items() if k not in ("input_ids", "attention_mask")}
    return forward_lm(lm, cap, {**_pad_right(ids, pad), **extra}), lens
