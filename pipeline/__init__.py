"""Decides and measures: series routing, volume building, vertebrae, morphometry, grading
and the result objects (SR, SEG, key image). Never imports ``training``."""
