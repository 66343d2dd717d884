from pathlib import Path

import pytest

from mcphive.errors import ConfigError
from mcphive.settings import Settings, load_settings


def test_file_values_are_overridden_by_environment_then_by_flags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "mcphive.toml"
    config.write_text('max_model_steps = 5\nqueue_max = 7\ntenant = "acme"\n')
    monkeypatch.setenv("MCPHIVE_QUEUE_MAX", "9")
    settings = load_settings(config, tenant="beta")
    assert (settings.max_model_steps, settings.queue_max, settings.tenant) == (5, 9, "beta")


def test_a_mcphive_table_in_a_shared_file_is_read(tmp_path: Path) -> None:
    config = tmp_path / "shared.toml"
    config.write_text("[mcphive]\nworkers = 3\n")
    assert load_settings(config).workers == 3


def test_malformed_toml_names_the_file_and_the_fix(tmp_path: Path) -> None:
    config = tmp_path / "mcphive.toml"
    config.write_text("workers = = 3\n")
    with pytest.raises(ConfigError, match=r"mcphive.toml is not valid TOML"):
        load_settings(config)


def test_an_invalid_value_names_the_setting(tmp_path: Path) -> None:
    config = tmp_path / "mcphive.toml"
    config.write_text("workers = -1\n")
    with pytest.raises(ConfigError, match=r"invalid setting 'workers'"):
        load_settings(config)


def test_a_routing_rule_that_is_not_a_regex_names_the_rule(tmp_path: Path) -> None:
    config = tmp_path / "mcphive.toml"
    config.write_text('[[rules]]\npattern = "dep(loy"\nagent = "ops"\n')
    with pytest.raises(ConfigError, match=r"invalid setting 'rules.0.pattern': .*not a valid regular expression"):
        load_settings(config)


def test_an_unknown_setting_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "mcphive.toml"
    config.write_text("wrokers = 2\n")
    with pytest.raises(ConfigError, match="wrokers"):
        load_settings(config)


def test_a_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")


def test_state_defaults_to_the_users_data_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert load_settings().data_dir == (tmp_path / "xdg" / "mcphive").resolve()


@pytest.mark.parametrize(("value", "mode"), [(True, "template"), (False, "off"), ("model", "model"), ("0", "off")])
def test_the_planner_setting_takes_a_mode_or_the_old_switch(value: object, mode: str) -> None:
    assert Settings(planner=value).planner == mode  # type: ignore[arg-type]


def test_an_unknown_planner_mode_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "mcphive.toml"
    config.write_text('planner = "llm"\n')
    with pytest.raises(ConfigError, match="planner"):
        load_settings(config)
