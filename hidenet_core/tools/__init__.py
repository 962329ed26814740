"""Tools around the codec, free to change without touching the format: training
(``train``), evaluation (``evaluate``), the progressive JPEG reference (``pjpeg``), the
formats hideNet races and the race's verdict (``contenders``) and the benchmark
(``bench``). They import the codec; the codec never imports them."""
