"""The README's property-test example runs as written, with the strategies' Hypothesis profile."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_readme_property_test_example_runs():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Property tests of the theorem"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    exec(compile(code, "README.md", "exec"), {"__name__": "readme_example"})


def test_profile_has_no_deadline_and_families_print_short():
    from hypothesis import given, settings

    from numerics.strategies import PROFILE, cpc_families

    assert settings.get_profile(PROFILE).deadline is None

    @settings(max_examples=3)
    @given(cpc_families())
    def short(family):
        assert len(repr(family)) < 200 and "masks=" in repr(family)

    short()
