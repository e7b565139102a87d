"""`vsae compare`: Hungarian-matched decoder cosines (and activation correlations) of SAEs."""

from __future__ import annotations

import click


@click.command()
@click.argument("saes", nargs=-1, required=True)
@click.option(
    "--acts", type=click.Path(), default=None, help="Store to correlate the latents' activations on."
)
@click.option("--out", required=True, type=click.Path(), help="Directory for compare.json and compare.png.")
@click.option(
    "--max-rows",
    type=int,
    default=20000,
    show_default=True,
    help="Rows of --acts used (a seeded spread sample).",
)
@click.option("--revision", default=None, help="Hub revision of hub-id SAEs.")
def compare(saes: tuple[str, ...], acts: str | None, out: str, max_rows: int, revision: str | None) -> None:
    """Compare SAEs (two, or a sweep across seeds): matched decoder cosine (mean, distribution,
    fractions above 0.7 / 0.9), with --acts the matched and best activation correlations, and the
    sweep's stability (mean matched cosine over all pairs)."""
    from vsae.errors import VsaeError
    from vsae.sae.hub_ids import check_sae_arg

    if len(saes) < 2:
        raise VsaeError("give at least two SAEs: vsae compare SAE_A SAE_B [...]")
    for s in saes:
        check_sae_arg(s)
    from vsae.eval.compare import run_compare

    rep = run_compare(list(saes), out, acts=acts, max_rows=max_rows, revision=revision)
    for p in rep.pairs:
        dec = p.decoder
        line = f"{p.a} vs {p.b}: matched cosine {dec['mean']:.3f} (> 0.7: {dec['frac_above_0.7']:.1%}, > 0.9: {dec['frac_above_0.9']:.1%})"
        if p.activations:
            line += f", activation corr matched {p.activations['matched_corr_mean']:.3f} best {p.activations['best_corr_mean']:.3f}"
        click.echo(line)
    if len(rep.pairs) > 1:
        click.echo(f"stability (mean matched cosine over {len(rep.pairs)} pairs): {rep.stability:.3f}")
    click.echo(f"wrote {out}/compare.json, compare.png")
