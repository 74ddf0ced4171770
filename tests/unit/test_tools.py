"""`make tools` installs exactly the programs the requires_tool marker knows."""

import re

from tests.support.processes import REPO_ROOT
from tests.support.tools import TOOLS


def test_make_tools_installs_every_tool_a_test_may_require() -> None:
    script = (REPO_ROOT / "tests" / "tools.sh").read_text()
    block = re.search(r'^tools="\n(.*?)^"$', script, re.MULTILINE | re.DOTALL)
    assert block is not None, 'tests/tools.sh has no tools="..." list'
    listed = dict(line.split() for line in block.group(1).splitlines() if line.strip())
    assert listed == TOOLS
