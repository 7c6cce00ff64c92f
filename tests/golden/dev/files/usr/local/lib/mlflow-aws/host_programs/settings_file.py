from __future__ import annotations

import json
from collections.abc import Collection, Mapping


class SettingsError(Exception):
    def __init__(self, path: str, key: str, problem: str) -> None:
        super().__init__(f"settings file {path}: {key} {problem}")
        self.path = path
        self.key = key


class Section:

    def __init__(self, path: str, prefix: str, data: Mapping[str, object]) -> None:
        self.path = path
        self.prefix = prefix
        self.data = data

    def key(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name

    def _value(self, name: str) -> object:
        if name not in self.data:
            raise SettingsError(self.path, self.key(name), "is missing")
        return self.data[name]

    def _refuse(self, name: str, wanted: str) -> SettingsError:
        return SettingsError(self.path, self.key(name), f"must be {wanted}")

    def section(self, name: str) -> Section:
        value = self._value(name)
        if not isinstance(value, dict):
            raise self._refuse(name, "an object")
        return Section(self.path, self.key(name), value)

    def text(self, name: str) -> str:
        value = self._value(name)
        if not isinstance(value, str) or not value:
            raise self._refuse(name, "a non-empty string")
        return value

    def choice(self, name: str, choices: Collection[str]) -> str:
        value = self._value(name)
        if value not in choices:
            raise self._refuse(name, "one of " + ", ".join(sorted(choices)))
        return str(value)

    def number(self, name: str) -> float:
        value = self._value(name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise self._refuse(name, "a positive number")
        return float(value)

    def flag(self, name: str) -> bool:
        value = self._value(name)
        if not isinstance(value, bool):
            raise self._refuse(name, "true or false")
        return value

    def text_map(self, name: str) -> dict[str, str]:
        section = self.section(name)
        for key in section.data:
            section.text(key)
        return {key: str(value) for key, value in section.data.items()}

    def texts(self, names: Collection[str]) -> dict[str, str]:
        return {name: self.text(name) for name in names}

    def text_lists(self, name: str) -> dict[str, list[str]]:
        section = self.section(name)
        lists: dict[str, list[str]] = {}
        for key, value in section.data.items():
            if not (isinstance(value, list) and value and all(isinstance(item, str) and item for item in value)):
                raise section._refuse(key, "a non-empty list of non-empty strings")
            lists[key] = list(value)
        if not lists:
            raise self._refuse(name, "a non-empty object")
        return lists


def load(path: str) -> Section:
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except OSError as error:
        raise SettingsError(path, "(the file)", f"cannot be read: {error.strerror}") from None
    except ValueError as error:
        raise SettingsError(path, "(the file)", f"is not JSON: {error}") from None
    if not isinstance(data, dict):
        raise SettingsError(path, "(the file)", "must hold one JSON object")
    return Section(path, "", data)
