"""``attnmel data check | synth | download``: the subcommands' arguments and help, exit codes,
one line per problem, the JSON report, one split checked or downloaded alone, the official
counts of the real ISIC 2017 copy; downloads come from a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import argparse
import json
import shutil

import pytest

from attnmel.data.layout import LAYOUTS, check_layout
from attnmel.data.synth import DEFAULT_CONFOUNDER_RATE, DEFAULT_SIGNAL
from orchestrator.cli import main
from orchestrator.cli.data import cmd_check, register
from tests._data_fixtures import publish


def test_register_adds_the_data_subcommands():
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["data", "check", "--dataset", "isic2017", "--root", "x", "--json"])
    assert args.func is cmd_check and args.json and args.dataset == "isic2017"
    for sub in ("synth", "download"):
        args = parser.parse_args(["data", sub, "--dataset", "isic2016", "--root", "x"])
        assert args.func.__name__ == f"cmd_{sub}"


def test_check_json_on_a_usable_dataset(synth2016_ro, cli):
    done = cli("data", "check", "--dataset", "isic2016", "--root", synth2016_ro, "--json", "--val-seed", "2")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)  # exactly one JSON object on stdout
    expected, _ = check_layout("isic2016", synth2016_ro, val_seed=2)
    assert report == {**expected, "problems": []}
    assert set(report["splits"]) == {"train", "val", "test"}
    assert set(report["splits"]["train"]) == {"images", "melanoma", "other", "roi", "groups"}


def test_check_prints_one_line_per_problem_and_exits_2(synth2017, cli):
    train = LAYOUTS["isic2017"]["train"]
    (synth2017 / LAYOUTS["isic2017"]["test"].labels).unlink()
    first = sorted((synth2017 / train.images).glob("ISIC_*[0-9].jpg"))[0]
    first.write_bytes(first.read_bytes()[:200])  # truncated
    done = cli("data", "check", "--dataset", "isic2017", "--root", synth2017)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith("attnmel: error: ") for line in lines)
    assert any("Test_v2_Part3_GroundTruth.csv" in line for line in lines)
    assert any(first.name in line for line in lines)
    as_json = cli("data", "check", "--dataset", "isic2017", "--root", synth2017, "--json")
    assert as_json.returncode == 2 and len(json.loads(as_json.stdout)["problems"]) == 2


def test_synth_then_check(tmp_path, cli):
    root = tmp_path / "d"
    args = ("data", "synth", "--dataset", "isic2017", "--root", root, "--n-train", "6", "--n-val", "3", "--n-test", "3")
    done = cli(*args, "--size", "32", "--seed", "4")
    assert done.returncode == 0, done.stderr
    report = json.loads(cli("data", "check", "--dataset", "isic2017", "--root", root, "--json").stdout)
    assert [report["splits"][s]["images"] for s in ("train", "val", "test")] == [6, 3, 3]
    again = cli(*args)
    assert again.returncode == 2
    assert again.stderr.count("\n") == 1 and "already exists" in again.stderr  # one line, no traceback


def test_synth_and_check_every_newer_layout_through_the_command_line(tmp_path, capsys):
    def run(*args):
        rc = main([str(a) for a in args])
        out = capsys.readouterr()
        return rc, out.out, out.err

    for dataset, keys in (("isic2020", ()), ("csv", ("--images", "images", "--labels", "labels.csv",
                                                     "--label-column", "diagnosis", "--positive", "melanoma",
                                                     "--group-column", "lesion_id"))):  # fmt: skip
        root = tmp_path / dataset
        rc, out, err = run("data", "synth", "--dataset", dataset, "--root", root, "--size", "24")
        assert rc == 0, err
        if dataset == "csv":
            assert "--label-column diagnosis" in out  # says how to read it back
        rc, out, _ = run("data", "check", "--dataset", dataset, "--root", root, *keys)
        assert rc == 0 and "usable: yes" in out and "carved from train" in out
        rc, out, _ = run("data", "check", "--dataset", dataset, "--root", root, *keys, "--json")
        report = json.loads(out)
        assert [c["split"] for c in report["carved"]] == ["val", "test"]
        assert report["grouped_by"] == ("patient_id" if dataset == "isic2020" else "lesion_id")
        assert all(report["splits"][s]["groups"] for s in ("train", "val", "test"))
    rc, _, err = run("data", "check", "--dataset", "isic2017", "--root", tmp_path, "--label-column", "x")
    assert rc == 2 and err.count("\n") == 1 and "csv only" in err


def test_cli_download_end_to_end(server, synth2016_ro, tmp_path, cli):
    publish(server, "isic2016", synth2016_ro)
    root = tmp_path / "data"
    done = cli("data", "download", "--dataset", "isic2016", "--root", root, "--base-url", server.url)
    assert done.returncode == 0, done.stderr
    assert cli("data", "check", "--dataset", "isic2016", "--root", root).returncode == 0
    shutil.rmtree(root)
    server.files.clear()
    failed = cli("data", "download", "--dataset", "isic2016", "--root", root, "--base-url", server.url)
    assert failed.returncode == 2
    errors = [line for line in failed.stderr.splitlines() if line.startswith("attnmel: error:")]
    assert len(errors) == 1 and "HTTP 404" in errors[0]


def test_cli_download_and_check_of_one_split(server, synth2016_ro, tmp_path, capsys):
    publish(server, "isic2016", synth2016_ro)
    root = tmp_path / "data"
    base = ["--dataset", "isic2016", "--root", str(root)]
    assert main(["data", "download", *base, "--split", "test", "--base-url", server.url]) == 0
    assert "3 files in place" in capsys.readouterr().out
    assert main(["data", "check", *base, "--split", "test", "--json"]) == 0
    assert list(json.loads(capsys.readouterr().out)["splits"]) == ["test"]


@pytest.mark.slow
def test_cli_synth_confounded(tmp_path, cli):
    root = tmp_path / "d"
    args = ("data", "synth", "--dataset", "isic2017", "--root", root, "--n-train", "10", "--n-val", "4")
    done = cli(*args, "--n-test", "4", "--size", "32", "--task", "confounded", "--confounder-rate", "0.8")
    assert done.returncode == 0, done.stderr
    assert "train 10 (3 melanoma, 3 marked)" in done.stdout  # round(0.8·3) melanoma + round(0.2·7) others
    bad = cli("data", "synth", "--dataset", "isic2017", "--root", tmp_path / "e", "--signal", "2")
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == ["attnmel: error: --signal must be in [0, 1], got 2.0"]
    assert not (tmp_path / "e").exists() or list((tmp_path / "e").iterdir()) == []


def test_synth_help_states_the_module_defaults(capsys):
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    with pytest.raises(SystemExit):
        parser.parse_args(["data", "synth", "--help"])
    helptext = " ".join(capsys.readouterr().out.split())
    assert "--task {abcd,confounded}" in helptext
    assert f"{DEFAULT_SIGNAL['confounded']} for confounded" in helptext
    assert f"(default {DEFAULT_CONFOUNDER_RATE})" in helptext


def test_data_check_split_checks_one_split_alone(copies, capsys):
    _, alone = copies["isic2018"]
    args = ["data", "check", "--dataset", "isic2018", "--root", str(alone)]
    assert main([*args, "--split", "test", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert list(report["splits"]) == ["test"] and report["problems"] == []
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "ISIC2018_Task3_Training_Input: image folder not found" in err


@pytest.mark.realdata
def test_data_check_reports_the_official_counts(real_isic2017, cli):
    done = cli("data", "check", "--dataset", "isic2017", "--root", real_isic2017, "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    splits = report["splits"]
    assert [splits[s]["images"] for s in ("train", "val", "test")] == [2000, 150, 600]
    assert [splits[s]["melanoma"] for s in ("train", "val", "test")] == [374, 30, 117]
    assert [splits[s]["roi"]["lesion"] for s in ("train", "val", "test")] == [2000, 150, 0]
    assert [splits[s]["roi"]["dermo"] for s in ("train", "val", "test")] == [0, 0, 0]
    assert report["problems"] == []
