"""The experiments of the book, one module per chapter (per paper).

Each chapter of the book is a story told around calls into one module here: every experiment of the
paper is one function whose docstring names the paper's table or figure, which takes the chapter's
parameters (plain names and numbers, as papermill passes them) and returns a tidy
``pandas.DataFrame`` (one row per image x setting, or per cell) plus the arrays its figure needs.
The chapter calls it, shows the table or figure and explains it; the algorithms themselves live in
``attacks/``, ``interpreters/``, ``defenses/``, ``attributes/`` and ``metrics``.

| chapter | module |
| --- | --- |
| ``ch00_data_and_models`` | :mod:`advxai.studies.data_and_models` |
| ``ch01_causal_attribution`` | :mod:`advxai.studies.causal_attribution` |
| ``ch02_heat_and_blur`` | :mod:`advxai.studies.heat_and_blur` |
| ``ch03_adv2`` | :mod:`advxai.studies.adv2` |
| ``ch04_advedge`` | :mod:`advxai.studies.advedge` |
| ``ch05_attributes`` | :mod:`advxai.studies.attributes` |
| ``ch06_cross_examination`` | :mod:`advxai.arena` (the arena is the study) |
"""
