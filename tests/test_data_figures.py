"""The figures command writes one readable PNG per world."""

import matplotlib.image
import pytest

from alignjax.data import figures


def test_figures_command_writes_pngs(tmp_path, capsys):
    paths = figures.main(["--out", str(tmp_path / "figs"), "--image-size", "16", "--dpi", "30"])
    assert sorted(p.name for p in paths) == sorted(f"{name}.png" for name in figures.WORLDS)
    for path in paths:
        image = matplotlib.image.imread(path)
        assert image.ndim == 3 and image.shape[0] > 50 and image.shape[1] > 50
        assert image.std() > 0.01  # not blank
    assert "wrote" in capsys.readouterr().out


def test_figures_command_rejects_bad_arguments(tmp_path):
    with pytest.raises(SystemExit):
        figures.main(["--out", str(tmp_path), "--image-size", "2"])
    with pytest.raises(SystemExit):
        figures.main(["--out", str(tmp_path), "--worlds", "mnist"])
