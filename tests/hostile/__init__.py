"""The project-wide hostile-input table (issue 15, "make the class impossible").

- :mod:`.values`: the table of bad values, derived from a valid argument by its kind (number,
  flag, string, array, table, object);
- ``recipes_<module>.py``: one *valid* call per public callable of that module (constructors and
  public methods of public classes too), keyed by qualified name;
- :mod:`.driver`: substitutes each argument of each recipe in turn with each bad value, runs the
  cases in a child interpreter (an abort or a hang fails one case, not the run) and judges the
  outcome;
- ``tests/test_hostile_table.py``: discovers every public callable from ``__all__`` and fails if
  one has no recipe, then runs the table module by module.
"""
