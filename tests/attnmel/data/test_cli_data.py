"""``attnmel data check | synth``: exit codes, one line per problem, the JSON report."""

from __future__ import annotations

import argparse
import json

from orchestrator.cli.data import cmd_check, register
from attnmel.data.layout import LAYOUTS, check_layout


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
    from orchestrator.cli import main

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
