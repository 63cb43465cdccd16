"""Sphinx configuration for the testservers documentation.

Build it, with Sphinx installed (it is not a dependency of the project)::

    python -m sphinx -W -b html Doc /tmp/testservers-html

The pages are CPython-style reST: ``.. module::``, ``.. class::`` and
``.. method::`` with the full signature, ``:class:`` and ``:meth:`` roles.
References to the standard library (``:mod:`socket```) are left as text:
the build needs no network, so there is no intersphinx inventory.
"""

import os
import re

_here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(_here, os.pardir, "testservers", "__init__.py"), encoding="utf-8") as f:
    release = re.search(r'^__version__ = "([^"]+)"', f.read(), re.M).group(1)
version = release

project = "testservers"
author = "the testservers authors"
copyright = "the testservers authors"

extensions = []
master_doc = "index"            # "root_doc" from Sphinx 4; both are read
exclude_patterns = ["_build"]
default_role = "literal"
# Literal blocks (::) hold code and program output alike: "default" colours
# what parses as Python and leaves the rest plain, without a warning.
highlight_language = "default"
pygments_style = "sphinx"

html_theme = "alabaster"
html_title = "testservers %s" % release
html_show_sourcelink = False
