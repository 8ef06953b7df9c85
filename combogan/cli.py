"""The `combogan` command: parse, call the library, print. Errors are one `error: …` line."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from . import config as config_mod
from .errors import UserError


class _Device(click.ParamType):
    """auto, cpu, cuda or cuda:N (checked against the machine when the command runs)."""

    name = "auto|cpu|cuda[:N]"

    def convert(self, value, param, ctx):
        import re

        if value in ("auto", "cpu", "cuda") or re.fullmatch(r"cuda:\d+", str(value)):
            return value
        self.fail(f"'{value}' is not one of auto, cpu, cuda, cuda:N", param, ctx)


DEVICE = _Device()


def _say(message: str, err: bool = False) -> None:
    """Print once per job: under torchrun only rank 0 speaks."""
    if os.environ.get("RANK", "0") == "0":
        click.echo(message, err=err)


FLIP_HELP = "Average each translation with that of the mirrored input (cancels left-right artifacts; twice the compute)."
WEIGHTS_HELP = ("Which weights translate: each domain's weight average (train.ema), the trained weights as they are (live), "
                "or auto: the average once it has had 3/4 of its horizon 1/(1-decay) in updates, before that the trained weights.")


def _weights_option(f):
    return click.option("--weights", default="auto", show_default=True, type=click.Choice(["auto", "average", "live"]), help=WEIGHTS_HELP)(f)


def _config_options(f):
    f = click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config key, e.g. --set model.ngf=32 (repeatable).")(f)
    f = click.option("--config", "config_file", type=click.Path(dir_okay=False), help="YAML config file (see configs/).")(f)
    return f


def _time_option(f):
    return click.option("--time", "time_budget", metavar="DURATION",
                        help="Fit the schedule, its decay included, into this much training time, e.g. 8h, 90m, 1h30m "
                             "(from the speed as it trains; never longer than the configured schedule).")(f)


def _seconds(time_budget: str | None) -> float | None:
    from .training.budget import parse_duration

    return parse_duration(time_budget) if time_budget is not None else None


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="combogan")
def cli() -> None:
    """ComboGAN: unpaired image-to-image translation across many domains.

    \b
    combogan data synth alps_seasons data/alps     make the synthetic seasons dataset
    combogan train --domains data/alps             train (writes runs/alps)
    combogan translate --from summer --to winter photo.jpg --out out/
    combogan info runs/alps
    combogan export --out exported/                 ONNX graphs per domain
    combogan serve                                  web page on http://127.0.0.1:8000/
    """


@cli.command()
@click.option("--domains", "domains_dir", required=True, type=click.Path(), help="Dataset folder: one subfolder per domain (or train/<domain>/, …).")
@_config_options
@click.option("--run", "--run-dir", "run", type=click.Path(), help="Run directory [default: runs/<dataset folder name>].")
@click.option("--max-iters", type=int, help="Stop at this iteration (the lr schedule still follows the full length).")
@_time_option
@click.option("--device", default="auto", type=DEVICE, show_default=True)
@click.option("--seed", type=int, help="Shortcut for --set train.seed=N.")
@click.option("--resume", is_flag=True, help="Continue the run from its latest complete checkpoint (with its own config.yaml unless --config).")
@click.option("-q", "--quiet", is_flag=True, help="No progress or notes on stderr; only the final summary.")
def train(domains_dir, config_file, overrides, run, max_iters, time_budget, device, seed, resume, quiet) -> None:
    """Train a ComboGAN run on every domain of a dataset folder."""
    from .apps.train import train as train_run

    seconds = _seconds(time_budget)
    overrides = list(overrides) + ([f"train.seed={seed}"] if seed is not None else [])
    base = None
    if resume and config_file is None:  # continue with the run's own settings (plus any --set)
        from .runs import rundir

        run_path = Path(run) if run else rundir.default_run_for(Path(domains_dir))
        if (run_path / rundir.MANIFEST).is_file():
            base = rundir.read_config(run_path)
    cfg = config_mod.load(config_file, overrides, base=base)
    result = train_run(domains_dir, cfg, run=run, device=device, max_iters=max_iters, resume=resume, quiet=quiet, time_budget=seconds)
    if result.interrupted:
        _say(f"stopped at step {result.step}; checkpoint saved in {result.run}. Resume with: "
             f"combogan train --domains {domains_dir} --run {result.run} --resume", err=True)
    else:
        _say(f"trained to step {result.step}/{result.total_iters}; run saved in {result.run}")


SCALE_HELP = ("Translate with the shorter side at N [default: the run's data.load_size, the scale it was trained at]; "
              "outputs come back at the input's size.")
NATIVE_HELP = "Translate at each input's own resolution instead of the training scale."


def _scale(load_size, native_size) -> int | None:
    """--load-size / --native-size as the shorter side to translate at (0: native; None: the run's)."""
    if load_size and native_size:
        raise click.UsageError("--load-size and --native-size are alternatives; give one")
    return 0 if native_size else load_size


@cli.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("--run", "--run-dir", "run", type=click.Path(), help="Run directory [default: most recently updated under runs/].")
@click.option("--from", "source", required=True, help="Domain of the inputs.")
@click.option("--to", "targets", required=True, multiple=True, help="Target domain (repeatable), or 'all'.")
@click.option("--out", required=True, type=click.Path(), help="Output folder (one subfolder per target when several).")
@click.option("--grid", type=click.Path(dir_okay=False), help="Also save a PNG grid: input | each target.")
@click.option("--batch-size", default=8, show_default=True, type=click.IntRange(min=1))
@click.option("--load-size", type=click.IntRange(min=8), help=SCALE_HELP)
@click.option("--native-size", is_flag=True, help=NATIVE_HELP)
@click.option("--max-side", default=2048, show_default=True, type=click.IntRange(min=0),
              help="Translate at most this longer side; larger working sizes are scaled down and the outputs resized back "
                   "(bounds memory; 0: no cap).")
@click.option("--device", default="auto", type=DEVICE, show_default=True)
@click.option("--overwrite", is_flag=True, help="Allow writing into a folder that holds the inputs.")
@click.option("--flip-average", is_flag=True, help=FLIP_HELP)
@_weights_option
@click.option("-q", "--quiet", is_flag=True, help="No progress or notes on stderr.")
def translate(inputs, run, source, targets, out, grid, batch_size, load_size, native_size, max_side, device, overwrite, flip_average, weights,
              quiet) -> None:
    """Translate images (files, folders or globs) from one domain to others."""
    from .apps.translate import translate_files
    from .apps.translator import Translator

    scale = _scale(load_size, native_size)
    translator = Translator(run, device=device, announce=not quiet, flip_average=flip_average, weights=weights)
    shorter = translator.config.data.load_size if scale is None else scale or None
    report = translate_files(translator, list(inputs), source, list(targets), Path(out), batch_size, Path(grid) if grid else None,
                             overwrite, progress=not quiet, load_size=shorter, max_side=max_side)
    click.echo(f"translated {report.written} image(s) from {source} -> {out}" + (f"; grid: {report.grid}" if report.grid else ""))
    if report.skipped:
        click.echo(f"warning: skipped {len(report.skipped)} file(s) (see the warnings above)", err=True)
    if not quiet:
        translator.note_weights()


@cli.command("add-domain")
@click.option("--run", "--run-dir", "run", type=click.Path(), help="Run to grow [default: most recently updated under runs/].")
@click.option("--domain", "domains", multiple=True, required=True, metavar="NAME=DIR", help="New domain and its image folder (repeatable).")
@_config_options
@click.option("--data", "existing_data", type=click.Path(), help="Images of the existing domains [default: the run's dataset folder].")
@click.option("--max-iters", type=int, help="Stop at this iteration of the add-domain schedule.")
@_time_option
@click.option("--device", default="auto", type=DEVICE, show_default=True)
@click.option("--resume", is_flag=True, help="Continue an unfinished add-domain.")
@click.option("-q", "--quiet", is_flag=True, help="No progress or notes on stderr; only the final summary.")
def add_domain(run, domains, config_file, overrides, existing_data, max_iters, time_budget, device, resume, quiet) -> None:
    """Add new domains to a trained run, keeping the existing ones frozen."""
    from .apps.train import add_domains
    from .training.adddomain import parse_domain_args

    seconds = _seconds(time_budget)
    result = add_domains(run, parse_domain_args(list(domains)), config_file, list(overrides), existing_data, device, max_iters, resume, quiet,
                         time_budget=seconds)
    names = ", ".join(parse_domain_args(list(domains)))
    if result.interrupted:
        _say(f"stopped at step {result.step}; resume with: combogan add-domain --run {result.run} "
             + " ".join(f"--domain {d}" for d in domains) + " --resume", err=True)
    else:
        _say(f"added {names} to {result.run} (step {result.step}/{result.total_iters})")


@cli.command("eval")
@click.option("--run", "--run-dir", "run", type=click.Path(), help="Run directory [default: most recently updated under runs/].")
@click.option("--domains", "domains_dir", required=True, type=click.Path(), help="Dataset folder with the evaluation split.")
@click.option("--split", default="test", show_default=True)
@click.option("--out", type=click.Path(file_okay=False), help="Folder for eval.json and one example grid per pair.")
@click.option("--json", "json_file", type=click.Path(dir_okay=False), help="Also write the report to this JSON file.")
@click.option("--fid", is_flag=True, help="Also compute FID/KID (needs combogan[metrics] and Inception weights).")
@click.option("--feature-weights", type=click.Path(dir_okay=False, exists=True), help="Inception weights file for FID/KID (offline).")
@click.option("--max-images", type=click.IntRange(min=1), help="At most this many images per domain.")
@click.option("--device", default="auto", type=DEVICE, show_default=True)
@click.option("--flip-average", is_flag=True, help=FLIP_HELP)
@_weights_option
@click.option("-q", "--quiet", is_flag=True, help="No progress or notes on stderr.")
def eval_cmd(run, domains_dir, split, out, json_file, fid, feature_weights, max_images, device, flip_average, weights, quiet) -> None:
    """Score every domain pair: L1/PSNR/SSIM vs ground truth and baselines, cycle L1, FID/KID."""
    from .apps.evaluate import evaluate
    from .apps.report import format_table

    feature = feature_weights if feature_weights else (2048 if fid else None)
    report = evaluate(run, domains_dir, split, out, device, feature, max_images, progress=not quiet, flip_average=flip_average,
                      weights=weights)
    for line in format_table(report):
        click.echo(line)
    if json_file:
        from . import atomic

        atomic.write_json(Path(json_file), report)


@cli.command()
@click.argument("run", required=False, type=click.Path())
@click.option("--run", "--run-dir", "run_option", type=click.Path(), help="Run directory (or give it as the argument) [default: most recently updated under runs/].")
@click.option("--json", "as_json", is_flag=True, help="Print the info as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="No notes on stderr (which run was picked).")
def info(run, run_option, as_json, quiet) -> None:
    """Show a run: domains, step/epoch, parameter counts, config."""
    from .apps.runinfo import run_info

    if run and run_option and Path(run) != Path(run_option):
        raise click.UsageError(f"two runs given: {run} and --run {run_option}")
    data = run_info(run or run_option, announce=not quiet)
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    click.echo(f"run: {data['run']}")
    click.echo(f"step: {data['step']} / {data.get('total_iters', '?')}  (epoch {data['epoch']})")
    if data.get("imported"):
        imp = data["imported"]
        click.echo(f"imported from: {imp['format']}" + (f", epoch {imp['epoch']}" if imp.get("epoch") else "")
                   + f"; files: {', '.join(imp['files'])}")
        click.echo(f"  {imp['optimizer_state']}" + (f"; fresh critics: {', '.join(imp['fresh_critics'])}" if imp.get("fresh_critics") else ""))
    else:
        click.echo(f"dataset: {data.get('dataset', '?')}  [{data.get('layout', '?')}]")
    click.echo("domains:")
    for d in data["domains"]:
        p = d["parameters"]
        added = f", added by {d['added_by']}" + (f" at step {d['added_at_step']}" if "added_at_step" in d else "")
        images = ", ".join(f"{k} {v}" for k, v in d["images"].items())
        click.echo(f"  {d['name']:<16} images: {images}  encoder {p['encoder']:,}  decoder {p['decoder']:,}  discriminator {p['discriminator']:,}{added}"
                   + _weights_said(d))
    click.echo(f"latest checkpoint: {data.get('latest')}")
    click.echo("config:")
    for section, values in data["config"].items():
        click.echo(f"  {section}: " + ", ".join(f"{k}={v}" for k, v in values.items()))


def _weights_said(domain: dict) -> str:
    """'  weights: average (1,290 updates)' or '  weights: live (average 280 of 750 updates)'."""
    if "weights" not in domain:
        return ""
    if "average_updates" not in domain:
        return f"  weights: {domain['weights']}"
    done, needed = domain["average_updates"], domain["average_settles_at"]
    said = f"{done:,} updates" if domain["weights"] == "average" else f"average {done:,} of {needed:,} updates"
    return f"  weights: {domain['weights']} ({said})"


@cli.group("import")
def import_group() -> None:
    """Bring in models trained with the official CycleGAN or ComboGAN code, as runs."""


def _names(value: str) -> list[str]:
    names = [n.strip() for n in value.split(",") if n.strip()]
    if len(set(names)) != len(names):
        raise UserError(f"--names repeats a name: {value}")
    return names


@import_group.command("cyclegan")
@click.argument("folder", required=False, type=click.Path())
@click.option("--names", required=True, help="Domain names A,B (G_A translates A -> B).")
@click.option("--run", "--run-dir", "run", required=True, type=click.Path(), help="The run to create (must not exist).")
@click.option("--epoch", default="latest", show_default=True, help="Which <epoch>_net_G_A.pth in FOLDER.")
@click.option("--g-ab", type=click.Path(), help="A -> B generator file (e.g. the zoo's horse2zebra.pth), instead of FOLDER.")
@click.option("--g-ba", type=click.Path(), help="B -> A generator file (e.g. zebra2horse.pth).")
@click.option("-q", "--quiet", is_flag=True, help="No summary line.")
def import_cyclegan(folder, names, run, epoch, g_ab, g_ba, quiet) -> None:
    """An official CycleGAN model: FOLDER with <epoch>_net_G_A/G_B(/D_A/D_B).pth, or --g-ab/--g-ba."""
    from .apps import importing

    if folder and (g_ab or g_ba):
        raise click.UsageError("give FOLDER or --g-ab/--g-ba, not both")
    if folder:
        got = importing.cyclegan_dir(Path(folder), _names(names), epoch)
    elif g_ab and g_ba:
        got = importing.cyclegan(_names(names), Path(g_ab), Path(g_ba))
    else:
        raise click.UsageError("give FOLDER, or both --g-ab and --g-ba")
    out = importing.write_run(got, Path(run))
    if not quiet:
        _say(f"imported {got.source['format']} ({', '.join(got.parts)}) into {out}; translate with: combogan translate --run {out} ...")


@import_group.command("combogan")
@click.argument("folder", type=click.Path())
@click.option("--names", required=True, help="Domain names in the official order (train0, train1, …).")
@click.option("--run", "--run-dir", "run", required=True, type=click.Path(), help="The run to create (must not exist).")
@click.option("--epoch", required=True, help="Which <epoch>_net_G<i>.pth (e.g. 1150 for the released painters model).")
@click.option("-q", "--quiet", is_flag=True, help="No summary line.")
def import_combogan(folder, names, run, epoch, quiet) -> None:
    """An official ComboGAN model: FOLDER with <epoch>_net_G<i>.pth (encoders, then decoders) and,
    optionally, <epoch>_net_D<i>.pth (the critics)."""
    from .apps import importing

    got = importing.combogan_dir(Path(folder), _names(names), epoch)
    out = importing.write_run(got, Path(run))
    if not quiet:
        _say(f"imported {got.source['format']} ({', '.join(got.parts)}) into {out}; critics: {got.source['critics']}")


@cli.command("export")
@click.option("--run", "--run-dir", "run", type=click.Path(), help="Run directory [default: most recently updated under runs/].")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder for <domain>.encoder/.decoder files and model.json.")
@click.option("--format", "fmt", default="onnx", show_default=True, type=click.Choice(["onnx", "torchscript"]))
@click.option("--names", help="Comma-separated domains to export [default: all].")
@click.option("--domains", hidden=True, help="Removed: use --names.")
@click.option("--fp16", is_flag=True, help="Half-precision weights and inputs (GPU runtimes).")
@_weights_option
@click.option("-q", "--quiet", is_flag=True, help="No notes on stderr.")
def export_cmd(run, out, fmt, names, domains, fp16, weights, quiet) -> None:
    """Export each domain's encoder and decoder (dynamic batch, height, width)."""
    from .apps.export import export

    if domains is not None:
        raise click.UsageError("export takes --names A,B for the domains to export (--domains is a dataset folder in train and eval)")
    folder = export(run, out, fmt, _names(names) if names else None, fp16, announce=not quiet, weights=weights)
    click.echo(f"exported {fmt} graphs and model.json to {folder}")


@cli.command("serve")
@click.option("--run", "--run-dir", "run", type=click.Path(), help="Run directory [default: most recently updated under runs/].")
@click.option("--host", default="127.0.0.1", show_default=True, help="0.0.0.0 listens on every interface (with a warning).")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--device", default="auto", type=DEVICE, show_default=True)
@click.option("--max-upload-mb", default=20.0, show_default=True, type=click.FloatRange(min=0, min_open=True))
@click.option("--load-size", type=click.IntRange(min=8), help=SCALE_HELP)
@click.option("--native-size", is_flag=True, help=NATIVE_HELP)
@click.option("--max-side", default=1024, show_default=True, type=click.IntRange(min=0),
              help="Uploads with a longer side are scaled down to it first, and answered at that size: smaller than "
                   "translate's 2048 because every answer is a PNG sent over HTTP (0: never).")
@click.option("--max-queue", default=32, show_default=True, type=click.IntRange(min=1),
              help="Translate requests admitted at once; past it, 503 with Retry-After instead of an unbounded wait.")
@click.option("--flip-average", is_flag=True, help=FLIP_HELP)
@_weights_option
@click.option("-q", "--quiet", is_flag=True, help="No start-up lines and no request log.")
def serve_cmd(run, host, port, device, max_upload_mb, load_size, native_size, max_side, max_queue, flip_average, weights, quiet) -> None:
    """A local web page that translates an image into every other domain, and its HTTP API."""
    from .apps.serve import serve

    serve(run, host, port, device, max_upload_mb, max_side, flip_average, _scale(load_size, native_size), quiet, max_queue, weights)


@cli.group()
def data() -> None:
    """Datasets: synthesize, check, fetch."""


@data.command("synth")
@click.argument("dataset")
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--size", default=128, show_default=True, type=click.IntRange(min=16), help="Image side in pixels.")
@click.option("--train", "n_train", default=200, show_default=True, type=click.IntRange(min=1), help="Training images per domain.")
@click.option("--test", "n_test", default=20, show_default=True, type=click.IntRange(min=0), help="Test scenes (each rendered in every domain).")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("-q", "--quiet", is_flag=True, help="No progress on stderr.")
def data_synth(dataset, out, size, n_train, n_test, seed, quiet) -> None:
    """Generate a synthetic dataset with ground truth (alps_seasons)."""
    from .domains import synthesizer
    from .progress import Progress

    synth = synthesizer(dataset)
    total = (n_train + n_test) * 4
    with Progress(total, f"synth {dataset}", unit="img", disable=quiet) as bar:
        summary = synth(out, size=size, train=n_train, test=n_test, seed=seed, progress=bar.update)
    click.echo(f"wrote {summary['images']} images of {', '.join(summary['domains'])} to {out}")


@data.command("check")
@click.argument("root", type=click.Path())
@click.option("-q", "--quiet", is_flag=True, help="Print only the problems.")
def data_check(root, quiet) -> None:
    """Show the layout, domains, counts and sizes found in ROOT, and every problem (exit 1 if
    training would fail)."""
    from .data.check import check, format_report

    report = check(root)
    for line in format_report(report, problems_only=quiet):
        click.echo(line)
    if not report.ok:
        raise UserError(f"{root} is not ready to train: {report.errors[0]}")


@data.command("fetch")
@click.argument("dataset", type=click.Choice(["alps_seasons", "painters_14"]))
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--url", help="Download from this URL instead of the official one (a mirror).")
@click.option("--sha256", help="Expected SHA-256 of the zip.")
@click.option("-q", "--quiet", is_flag=True, help="No progress on stderr.")
def data_fetch(dataset, out, url, sha256, quiet) -> None:
    """Download an official dataset (resumable), unzip it safely and name its domains."""
    from .data.fetch import fetch

    folder = fetch(dataset, out, url=url, sha256=sha256, progress=not quiet)
    click.echo(f"{dataset} is in {folder}; train with: combogan train --domains {folder}")


def main(argv: list[str] | None = None) -> int:
    """Entry point: every failure becomes one line on stderr and an exit code (2 usage, 1 other)."""
    import warnings

    warnings.formatwarning = lambda message, category, *args, **kwargs: f"warning: {message}\n"
    try:
        cli.main(args=argv, prog_name="combogan", standalone_mode=False)
        return 0
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.UsageError as exc:
        click.echo(f"error: {exc.format_message()} (see 'combogan {exc.ctx.command_path.split(' ', 1)[1] + ' ' if exc.ctx and ' ' in exc.ctx.command_path else ''}--help')", err=True)
        return 2
    except click.Abort:
        click.echo("error: aborted", err=True)
        return 130
    except UserError as exc:
        click.echo(f"error: {exc}", err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        click.echo("error: interrupted", err=True)
        return 130
    except Exception as exc:  # a bug, not a user error: still one line unless asked for more
        if os.environ.get("COMBOGAN_DEBUG"):
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        click.echo(f"error: internal error: {type(exc).__name__}: {first} (set COMBOGAN_DEBUG=1 for the traceback)", err=True)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
