"""Olson et al.'s shared vision/language features experiment: do SAE latents of a multimodal
model's language model fire on image and text tokens alike, and mean the same concept in both?
The demo's section "Shared vision/language latents"; the metric itself is `vsae.eval.shared`
(`vsae eval shared`).

- `shared_run`: what it does (`SharedFeaturesConfig`), the runner in named steps
  (`run_shared_features`: `extract_stores`, `train_saes`, `measure`, `describe_setup`) and the
  frozen typed result (`SharedFeaturesResult`; ``to_json()``: results.json's "shared");
- `shared_report.shared_section`: the report section.

The embedded world plugs in from above: the demo passes its tiny LLaVA, its exported image folder
and its class-phrase words.
"""
