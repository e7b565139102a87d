"""Evaluation metrics of Pach et al. (2025) and Olson et al. (2025); definitions in METRICS.md,
usage in docs/eval.md. Pure functions on arrays / row-chunk iterators, one module per family:

    recon            ReconAccumulator, reconstruction_metrics
    zeroshot         zero_shot_accuracy (the splice test itself: vsae.steer.reconstruction)
    monosemanticity  monosemanticity_score, monosemanticity_score_streaming, summarize_ms
    topimages        top_images, top_images_streaming, jaccard_pair_counts
    taxonomy         from_inat_names, from_file, from_wordnet (ClassHierarchy)
    hierarchy        lca_depth_matrix, latent_lca_depths, depth_per_group, ontology_report
    probe            probe_accuracy, compare_probes
    ood              auroc, fpr_at_tpr, roc_curve, ood_scores, ood_report
    naming           name_latents, name_agreement, encode_words
    attributes       image_attributes (ground-truth attributes.json of a store's images)
    compare          compare_saes, hungarian, decoder_cosines, activation_correlation (`vsae compare`)
    pipeline         run_<command> for `vsae eval <command>` (stores, SAEs, files -> JSON + PNG)
"""

from vsae.lazy import lazy_attributes

_EXPORTS = {
    "ReconAccumulator": "recon",
    "reconstruction_metrics": "recon",
    "zero_shot_accuracy": "zeroshot",
    "monosemanticity_score": "monosemanticity",
    "monosemanticity_score_streaming": "monosemanticity",
    "summarize_ms": "monosemanticity",
    "MSResult": "monosemanticity",
    "top_images": "topimages",
    "top_images_streaming": "topimages",
    "jaccard_pair_counts": "topimages",
    "TopImages": "topimages",
    "from_inat_names": "class_hierarchy",
    "from_file": "class_hierarchy",
    "from_wordnet": "class_hierarchy",
    "ClassHierarchy": "class_hierarchy",
    "lca_depth_matrix": "hierarchy",
    "latent_lca_depths": "hierarchy",
    "depth_per_group": "hierarchy",
    "ontology_report": "hierarchy",
    "probe_accuracy": "probe",
    "compare_probes": "probe",
    "ProbeConfig": "probe",
    "auroc": "ood",
    "fpr_at_tpr": "ood",
    "roc_curve": "ood",
    "ood_scores": "ood",
    "ood_report": "ood",
    "name_latents": "naming",
    "name_agreement": "naming",
    "encode_words": "naming",
    "compare_saes": "compare",
    "hungarian": "compare",
    "decoder_cosines": "compare",
    "activation_correlation": "compare",
}


# Lazy: `import vsae.eval` stays cheap (no torch / sklearn / scipy import).
__getattr__, __dir__ = lazy_attributes(__name__, {k: f"vsae.eval.{m}" for k, m in _EXPORTS.items()})


__all__ = sorted(_EXPORTS)
