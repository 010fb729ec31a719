"""Surveys (rules/survey.smk): fields from an observation sheet, one survey catalogue, fields as the
unit of reruns, and provenance.

Three simulated fields in a row, each 128 pixels of 30 arcsec, two thirds of a field apart, so that
neighbours overlap by a third; one sky (sources placed by RA/Dec) observed by each: a source in each
field alone and one in each overlap, placed nearer one of the two centres. A fourth field is added
to the sheet afterwards.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import REPO, SNAKEMAKE, job_counts, run_snakemake

SPECTROPOL = str(Path(sys.executable).with_name("spectropol"))

DEC = -30.0
FIELD_PX, CELL_ARCSEC = 128, 30.0
SPACING_ARCSEC = FIELD_PX * CELL_ARCSEC * 2 / 3  # neighbours overlap by a third of a field
RA0 = 60.0
FIELD_NAMES = ("A", "B", "C", "D")


def field_centre(k: int) -> tuple[float, float]:
    """(RA, Dec) of field k: along the row of constant declination, SPACING_ARCSEC apart on the sky."""
    return float(RA0 + SPACING_ARCSEC / 3600 / np.cos(np.deg2rad(DEC)) * k), DEC


def sky_position(east_arcsec: float, north_arcsec: float) -> tuple[float, float]:
    """(RA, Dec) at an offset from field A's centre along the row (small angles)."""
    return float(RA0 + east_arcsec / 3600 / np.cos(np.deg2rad(DEC))), DEC + north_arcsec / 3600


# name, east offset from A's centre (arcsec; fields at 0, 2560, 5120, 7680), north offset, RM,
# and the field that must keep it: the one whose centre is nearest.
TRUTH = [
    ("s1", -1000.0, 300.0, 4.0, "A"),
    ("s2", 1100.0, -400.0, -5.0, "A"),   # A/B overlap (640..1920), 1100 from A, 1460 from B
    ("s3", 2560.0, -600.0, 2.5, "B"),
    ("s4", 4060.0, 500.0, 6.0, "C"),     # B/C overlap (3200..4480), 1500 from B, 1060 from C
    ("s5", 5620.0, -200.0, -3.0, "C"),
    ("s6", 6500.0, 450.0, -6.5, "D"),    # C alone until D is added: then C/D overlap, 1380 from C, 1180 from D
    ("s7", 8000.0, -300.0, 3.5, "D"),    # D alone
]


@pytest.fixture(scope="module")
def survey(tmp_path_factory):
    """Four simulated field MSs, the sheet of the first three, and a survey config."""
    from spectropol.stages.simulate import simulate_ms

    folder = tmp_path_factory.mktemp("survey")
    sky = {"reference_frequency_hz": 128e6, "sources": [
        {"name": name, "radec_deg": list(sky_position(east, north)), "stokes_i_jy": 1.0, "spectral_index": -0.7,
         "pol_fraction": 0.3, "rm_rad_m2": rm, "pol_angle_deg": 20.0} for name, east, north, rm, _ in TRUTH]}
    (folder / "sky.yaml").write_text(yaml.safe_dump(sky))
    for k, name in enumerate(FIELD_NAMES):
        ra, dec = field_centre(k)
        simulate_ms(folder / f"{name}.ms", folder / "sky.yaml", REPO / "resources/layouts/ska_low_like.yaml",
                    ra_deg=ra, dec_deg=dec, start_freq_hz=120e6, chan_width_hz=2e6, nchan=8, ntimes=12,
                    integration_s=10.0, hour_angle_span_h=4.0, noise_jy=0.1, seed=10 + k)
    settings = {"imaging": {"size": FIELD_PX, "cell_arcsec": CELL_ARCSEC}, "clean": {"niter": 300},
                "cube": {"chunk": 64}, "faraday": {"clean_max_iter": 200}, "catalogue": {"box": 16},
                "report": {"brightest": 1}}
    (folder / "survey.yaml").write_text(yaml.safe_dump(settings | {"observations": "observations.tsv"}))
    (folder / "single.yaml").write_text(yaml.safe_dump(settings | {"input": {"ms": "B.ms"}}))
    return folder


def write_sheet(folder, names):
    rows = ["name\tms\tclean.niter"] + [f"{name}\t{name}.ms\t" for name in names]
    (folder / "observations.tsv").write_text("\n".join(rows) + "\n")


def read_table(path):
    from astropy.table import Table

    return Table.read(path, format="ascii.ecsv")


@pytest.mark.slow
def test_survey_of_three_fields_then_a_fourth(survey):
    write_sheet(survey, FIELD_NAMES[:3])
    first = run_snakemake(survey, "--configfile", str(survey / "survey.yaml"))
    counts = job_counts(first)
    per_field = {name: sum(n for rule, n in counts.items() if rule.startswith(f"field_{name}_")) for name in "ABC"}
    assert len(set(per_field.values())) == 1 and per_field["A"] > 10, counts
    assert counts["survey_catalogue"] == 1 and counts["survey_qa"] == 1
    lint = run_snakemake(survey, "--configfile", str(survey / "survey.yaml"), "--lint")
    assert "Congratulations, your workflow is in a good condition!" in lint.stdout + lint.stderr

    merged = read_table(survey / "results/survey/catalogue.ecsv")
    truth_ra = np.array([sky_position(e, n)[0] for _, e, n, _, _ in TRUTH[:6]])
    truth_dec = np.array([sky_position(e, n)[1] for _, e, n, _, _ in TRUTH[:6]])
    from spectropol.stages.survey import angular_separation_deg

    expected_field = {"s1": "A", "s2": "A", "s3": "B", "s4": "C", "s5": "C", "s6": "C"}
    for k, (name, *_rest) in enumerate(TRUTH[:6]):
        distance = angular_separation_deg(merged["ra"], merged["dec"], truth_ra[k], truth_dec[k]) * 3600
        near = np.flatnonzero(distance < 60)
        assert len(near) == 1, f"{name}: {len(near)} rows within 60 arcsec ({sorted(distance)[:3]})"
        row = merged[near[0]]
        assert row["field"] == expected_field[name], (name, row["field"])
        assert row["dataref"].startswith(f"fields/{row['field']}/catalogue/catalogue.ecsv#")
        assert abs(row["rm"] - TRUTH[k][3]) < 3 * row["rm_err"] + 0.05, (name, row["rm"], row["rm_err"])
    assert len(merged) == 6
    assert sorted(merged["Nfields"]) == [1, 1, 1, 1, 2, 2]  # s2 and s4 were seen twice

    quality = json.loads((survey / "results/survey/fields.json").read_text())
    assert [line["field"] for line in quality["fields"]] == ["A", "B", "C"]
    assert quality["catalogue"] == {"sources": 6, "seen_by_several_fields": 2}
    for line in quality["fields"]:
        assert 0.5 < line["rms_qu_jy_beam"] / quality["median_rms_qu_jy_beam"] < 2 and not line["attention"]

    # the fourth field: its jobs and the survey-wide ones, nothing of A, B or C
    write_sheet(survey, FIELD_NAMES)
    second = run_snakemake(survey, "--configfile", str(survey / "survey.yaml"))
    added = job_counts(second)
    assert {rule for rule in added if rule.startswith("field_")} == {rule.replace("field_A_", "field_D_")
                                                                     for rule in counts if rule.startswith("field_A_")}
    assert {rule: n for rule, n in added.items() if not rule.startswith("field_D_")} == {
        "survey_catalogue": 1, "survey_qa": 1, "all": 1}
    merged = read_table(survey / "results/survey/catalogue.ecsv")
    assert len(merged) == 7
    s6 = merged[np.argmin(angular_separation_deg(merged["ra"], merged["dec"], *sky_position(6500.0, 450.0)))]
    assert s6["field"] == "D" and s6["Nfields"] == 2  # now nearer D's centre than C's
    assert "Nothing to be done" in run_snakemake(survey, "--configfile", str(survey / "survey.yaml"), "-n").stdout

    # a changed survey-wide setting reruns what it changes, in every field, and nothing else
    (survey / "stricter.yaml").write_text(yaml.safe_dump({"catalogue": {"min_snr": 9.0}}))
    stricter = job_counts(run_snakemake(survey, "--configfile", str(survey / "survey.yaml"),
                                        str(survey / "stricter.yaml"), "-n"))
    assert {rule.split("_", 2)[2] if rule.startswith("field_") else rule for rule in stricter} == {
        "catalogue", "qa_summary", "report_sources", "report_catalogue", "report_provenance", "survey_catalogue",
        "survey_qa", "all"}
    assert all(stricter[f"field_{name}_catalogue"] == 1 for name in FIELD_NAMES)


@pytest.mark.slow
def test_a_field_alone_and_a_code_change(survey, tmp_path):
    """A field's products are those of a single-field run of its config; a change to a stage's code
    reruns that stage and what reads its products, a change to a docstring reruns nothing."""
    if not (survey / "results/fields/B/catalogue/catalogue.ecsv").exists():
        pytest.skip("needs the survey run of test_survey_of_three_fields_then_a_fourth")
    workflow = tmp_path / "workflow"  # a checkout of the workflow whose code this test changes
    workflow.mkdir()
    for part in ("Snakefile", "rules", "scripts", "src", "config", "resources", "envs"):
        copy = shutil.copytree if (REPO / part).is_dir() else shutil.copy2
        copy(REPO / part, workflow / part, **({"ignore": shutil.ignore_patterns("__pycache__", "*.egg-info")}
                                             if (REPO / part).is_dir() else {}))
    single = tmp_path / "single"
    single.mkdir()
    (single / "B.ms").symlink_to(survey / "B.ms")
    command = [SNAKEMAKE, "-s", str(workflow / "Snakefile"), "--directory", str(single), "--cores", "2",
               "--configfile", str(survey / "single.yaml")]
    subprocess.run(command, capture_output=True, text=True, check=True, cwd=single)
    alone, in_survey = read_table(single / "results/catalogue/catalogue.ecsv"), read_table(
        survey / "results/fields/B/catalogue/catalogue.ecsv")
    assert alone.colnames == in_survey.colnames and len(alone) == len(in_survey) >= 2
    for name in alone.colnames:
        a, b = np.asarray(alone[name]), np.asarray(in_survey[name])
        assert (np.array_equal(a, b, equal_nan=True) if a.dtype.kind == "f" else np.array_equal(a, b)), name

    # on SLURM, the field's jobs ask for what the same jobs of the single-field run ask for
    def slurm_resources(folder, config, snakefile, prefix=""):
        dry = subprocess.run([SNAKEMAKE, "-s", str(snakefile), "--directory", str(folder), "--configfile", str(config),
                              "--profile", str(REPO / "profiles/slurm"), "-n", "--forceall"],
                             capture_output=True, text=True, check=True, cwd=folder)
        # a job's block, indented when it is one of a group job's (split and image, on SLURM)
        jobs = re.findall(r"^( *)(?:local)?(?:rule|checkpoint) (\w+):\n(?:\1    .*\n)*?\1    resources: (.*)$",
                          dry.stdout, flags=re.MULTILINE)
        return sorted((rule.removeprefix(prefix), sorted(item.strip() for item in resources.split(",")))
                      for _indent, rule, resources in jobs
                      if rule.startswith(prefix) and not rule.startswith("survey_") and rule != "all")

    in_survey = slurm_resources(survey, survey / "survey.yaml", REPO / "Snakefile", "field_B_")
    assert len(in_survey) > 10 and in_survey == slurm_resources(single, survey / "single.yaml", workflow / "Snakefile")

    kernel = workflow / "src/spectropol/kernels/faraday.py"
    original = kernel.read_text()
    kernel.write_text(original.replace('"""', '"""A changed docstring. ', 1))
    dry = subprocess.run(command + ["-n"], capture_output=True, text=True, check=True, cwd=single)
    assert "Nothing to be done" in dry.stdout + dry.stderr

    kernel.write_text(original + "\n\nRELEASE_NOTE = 'the Faraday kernels changed'\n")
    rerun = job_counts(subprocess.run(command + ["-n"], capture_output=True, text=True, check=True, cwd=single))
    assert rerun["faraday_depth"] == 1 and rerun["catalogue"] == 1
    assert not {"fingerprint_ms", "inspect_ms", "split_channel", "image_channel", "gather_cube",
                "export_cube_fits"} & set(rerun), rerun


@pytest.mark.slow
def test_provenance_of_a_cube_and_a_catalogue_row(survey):
    """Every product says which commit, configuration, sheet and field made it (after the survey test)."""
    if not (survey / "results/survey/catalogue.ecsv").exists():
        pytest.skip("needs the survey run of test_survey_of_three_fields_then_a_fourth")
    sheet_sha = hashlib.sha256((survey / "observations.tsv").read_bytes()).hexdigest()
    cube = subprocess.run([SPECTROPOL, "provenance",
                           str(survey / "results/fields/D/cube/cube.zarr"), "--json"],
                          capture_output=True, text=True, check=True)
    record = json.loads(cube.stdout)
    assert record["field"] == "D" and record["sheet_sha256"] == sheet_sha
    assert len(record["config_sha256"]) == 64 and record["workflow_commit"]
    row = subprocess.run([SPECTROPOL, "provenance",
                          str(survey / "results/survey/catalogue.ecsv"), "--row", "D/SP00001", "--json"],
                         capture_output=True, text=True, check=True, cwd=survey)
    record = json.loads(row.stdout)
    assert record["row"]["field"] == "D" and record["row"]["cat_id"] == "D/SP00001"
    assert record["made_by"]["field"] == "D"  # the field's catalogue that measured the row
    assert record["made_by"]["sheet_sha256"] == sheet_sha
    # the survey catalogue's own: the survey's config and sheet
    assert record["catalogue"]["sheet_sha256"] == sheet_sha and record["catalogue"]["workflow_commit"]
    assert record["catalogue"]["config_sha256"] != record["made_by"]["config_sha256"]  # the field's has its folders


# -- the sheet and the code digests, without running the workflow ----------------------------------


@pytest.fixture
def defaults():
    return yaml.safe_load((REPO / "config/config.yaml").read_text())


def test_sheet_rows_become_field_configs(tmp_path, defaults):
    from spectropol.planning.survey import field_config, read_observation_sheet

    for name in ("a.ms", "b1.ms", "b2.ms"):
        (tmp_path / name).mkdir()
    sheet = tmp_path / "fields.tsv"
    sheet.write_text("# two fields\nname\tms\tcolumn\timaging.robust\tchannels.exclude\n"
                     f"P1+2\t{tmp_path}/a.ms\tCORRECTED_DATA\t\t\n"
                     f"P2\t{tmp_path}/b*.ms\t\t-0.5\t[0, \"4-5\"]\n")
    survey = read_observation_sheet(sheet, defaults)
    assert [f.name for f in survey.fields] == ["P1+2", "P2"] and survey.fields[0].ident == "P1_2"
    assert survey.sheet_sha256 == hashlib.sha256(sheet.read_bytes()).hexdigest()
    first, second = (field_config(defaults, f) for f in survey.fields)
    assert first["input"]["ms"] == [f"{tmp_path}/a.ms"] and first["input"]["column"] == "CORRECTED_DATA"
    assert first["imaging"]["robust"] == defaults["imaging"]["robust"]
    assert second["input"]["ms"] == [f"{tmp_path}/b1.ms", f"{tmp_path}/b2.ms"]
    assert second["imaging"]["robust"] == -0.5 and second["channels"]["exclude"] == [0, "4-5"]
    assert (first["results_dir"], first["work_dir"], first["logs_dir"]) == (
        "results/fields/P1+2", "work/fields/P1+2", "logs/fields/P1+2")
    assert defaults["input"]["ms"] is None  # the survey's own config is not changed


@pytest.mark.parametrize("content, message", [
    ("name\tfiles\nA\ta.ms\n", "has no 'ms' column"),
    ("name\tms\nA\ta.ms\nA\ta.ms\n", "line 3: field 'A' is given twice"),
    ("name\tms\nA b\ta.ms\n", "line 2: field name 'A b' must be"),
    ("name\tms\nA\tnowhere*.ms\n", "line 2 (field A): nowhere*.ms matches no Measurement Set"),
    ("name\tms\nA\t\n", "line 2 (field A): no Measurement Set in the ms column"),
    ("name\tms\timaging.robustness\nA\ta.ms\t1\n", "column 'imaging.robustness' is not a setting of the config"),
    ("name\tms\tresults_dir\nA\ta.ms\tx\n", "results_dir is the same for every field"),
    ("name\tms\nA-1\ta.ms\nA_1\ta.ms\n", "differ only in punctuation"),
    ("name\tms\n", "has a header but no fields"),
])
def test_a_bad_sheet_is_refused_in_one_line_naming_it(tmp_path, defaults, content, message):
    from spectropol.planning import PlanError
    from spectropol.planning.survey import read_observation_sheet

    sheet = tmp_path / "fields.tsv"
    sheet.write_text(content)
    with pytest.raises(PlanError) as caught:
        read_observation_sheet(sheet, defaults)
    assert str(caught.value).startswith(f"{sheet}: ") and message in str(caught.value) and "\n" not in str(caught.value)


def test_the_code_digest_follows_behaviour_not_comments(tmp_path):
    from spectropol.planning import code
    from spectropol.planning.code import code_files

    def code_digest(script, package):  # read the files afresh: the workflow reads them once per run
        code._parsed.cache_clear()
        code.code_digest.cache_clear()
        return code.code_digest(script, package)

    package = tmp_path / "src/spectropol"
    shutil.copytree(REPO / "src/spectropol", package, ignore=shutil.ignore_patterns("__pycache__"))
    script = tmp_path / "faraday_depth.py"
    shutil.copy2(REPO / "scripts/faraday_depth.py", script)
    names = {str(p.relative_to(package)) for p in code_files(script, package) if p.is_relative_to(package)}
    assert {"stages/faraday.py", "kernels/faraday.py", "io/stores.py", "__init__.py"} <= names
    assert not {"stages/image.py", "kernels/gridding.py", "stages/catalogue.py"} & names
    before = code_digest(script, package)
    kernel = package / "kernels/faraday.py"
    kernel.write_text(kernel.read_text().replace('"""', '"""Reworded. ', 1) + "\n# a comment\n")
    assert code_digest(script, package) == before
    kernel.write_text(kernel.read_text() + "\nSCALE = 2\n")
    assert code_digest(script, package) != before


def test_a_sheet_value_the_schema_refuses_stops_the_run_before_any_job(tmp_path):
    (tmp_path / "A.ms").mkdir()
    (tmp_path / "fields.tsv").write_text("name\tms\timaging.robust\nA\tA.ms\tsoft\n")
    result = run_snakemake(tmp_path, "--config", "observations=fields.tsv", "-n", check=False)
    assert result.returncode != 0
    expected = "spectropol: error: fields.tsv: field A: ['imaging']['robust'] 'soft' is not of type 'number'"
    assert expected in result.stderr
    assert not (tmp_path / "results").exists()


def test_rows_of_different_fields_within_a_beam_are_one_source():
    from spectropol.stages.survey import match_groups

    beam = 30 / 3600
    # 0,1: fields 0 and 1, 0.8 beam apart -> one; 2,3: field 0 twice, 0.5 beam apart -> two sources;
    # 4,5: fields 1 and 2, 1.2 beams apart with beams 1 and 1.5 -> one (the larger beam decides);
    # 6,7: fields 0 and 2, 2 beams apart -> two
    ra = np.array([10.0, 10.0 + 0.8 * beam, 20.0, 20.0 + 0.5 * beam, 30.0, 30.0 + 1.2 * beam, 40.0, 40.0 + 2 * beam])
    dec = np.zeros(8)
    field = np.array([0, 1, 0, 0, 1, 2, 0, 2])
    radius = np.array([beam] * 5 + [1.5 * beam] + [beam] * 2)
    group = match_groups(ra, dec, field, radius)
    assert group[0] == group[1] and group[4] == group[5]
    assert len({group[2], group[3], group[6], group[7], group[0], group[4]}) == 6
