"""vsae.registry.Registry: the one registry idiom (decorator, refused duplicates, lookup with the
choices, built-in modules and entry-point plug-ins)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from vsae.errors import VsaeError
from vsae.registry import Registry


def test_decorator_registers_and_refuses_a_taken_name():
    reg: Registry[object] = Registry("toy", "vsae.test_toys")

    @reg.register("a")
    class A:
        pass

    assert reg.get("a") is A and "a" in reg and reg.names() == ["a"]
    with pytest.raises(VsaeError, match="toy 'a' is already registered"):

        @reg.register("a")
        class B:
            pass

    reg.register("a", replace=True)(int)
    assert reg.get("a") is int
    reg.unregister("a")
    assert reg.find("a") is None


def test_unknown_name_lists_the_choices():
    reg: Registry[int] = Registry("number", "vsae.test_numbers")
    reg.register("one")(1)
    reg.register("two")(2)
    with pytest.raises(VsaeError, match=r"unknown number 'three'; use one of: one, two"):
        reg.get("three")


def _plugin_dist(tmp_path: Path, group: str, lines: list[str], module: str, code: str) -> None:
    dist = tmp_path / "toyplug-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toyplug\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[{group}]\n" + "\n".join(lines) + "\n")
    (tmp_path / f"{module}.py").write_text(code)
    sys.path.insert(0, str(tmp_path))


def test_entry_points_load_on_lookup(tmp_path, monkeypatch):
    import vsae.registry as registry_mod

    reg: Registry[object] = Registry("gadget", "vsae.test_gadgets")
    monkeypatch.setattr(registry_mod, "_TEST_REG", reg, raising=False)
    code = "import vsae.registry as r\n@r._TEST_REG.register('self_registered')\nclass G: pass\nclass H: pass\n"
    _plugin_dist(tmp_path, "vsae.test_gadgets", ["self_registered = toyplug_mod", "named = toyplug_mod:H",
                                                  "broken = toyplug_missing"], "toyplug_mod", code)
    try:
        assert reg.names() == ["broken", "named", "self_registered"]  # listed without importing
        assert "toyplug_mod" not in sys.modules
        assert reg.get("self_registered").__name__ == "G"
        assert reg.get("named").__name__ == "H"
        with pytest.raises(VsaeError, match=r"gadget plug-in 'broken' \(toyplug_missing\) failed to import"):
            reg.get("broken")
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("toyplug_mod", None)


def test_builtin_package_modules_register_on_first_lookup():
    from vsae.sae.arch_registry import BUILTIN_PACKAGE

    reg: Registry[object] = Registry("module", "vsae.test_modules", builtin_package=BUILTIN_PACKAGE)
    assert "topk" in reg.names()  # the module names of the package, none imported by names()
