"""The committed golden files (tests/golden/, tools/golden.py) are what the program renders: a template
change shows up as a text diff of the user data and the host's files, reviewed with the change."""

from __future__ import annotations

from tools import golden


def test_the_golden_files_are_the_rendered_user_data_and_host_files():
    diff = "".join(golden.differences())
    assert not diff, f"the golden files differ from the program; if intended, run {golden.COMMAND} and commit:\n{diff}"


def test_every_case_has_its_user_data_and_its_file_list():
    committed = golden.committed()
    for case in golden.CASES:
        assert f"{case.name}/user-data.yaml" in committed
        assert f"{case.name}/files.txt" in committed


def test_a_changed_template_is_reported_as_a_diff_of_the_file_it_changed(tmp_path):
    golden.write(tmp_path)
    unit = tmp_path / "dev" / "files" / "etc" / "systemd" / "system" / "mlflow.service"
    unit.write_text(unit.read_text().replace("Restart=always", "Restart=on-failure"))
    diffs = list(golden.differences(tmp_path))
    assert len(diffs) == 1
    assert diffs[0].startswith("--- a/tests/golden/dev/files/etc/systemd/system/mlflow.service\n")
    assert "\n-Restart=on-failure\n+Restart=always\n" in diffs[0]
