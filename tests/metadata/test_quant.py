"""IJG quality estimation against Pillow (libjpeg-turbo) saves."""

import pytest

from services.metadata import jpeg, quant
from tests.metadata.builders import jpeg_bytes, textured


@pytest.mark.parametrize("quality", [10, 35, 50, 60, 75, 85, 90, 95, 100])
def test_pillow_saves_are_standard_at_their_quality(quality):
    s = jpeg.parse(jpeg_bytes(textured(48, 48), quality))
    est = quant.estimate(*s.luma_chroma_tables())
    assert est.standard and est.luma_error == 0
    assert est.quality == quality or (quality == 100 and est.quality == 100)


def test_custom_tables_are_not_standard_but_get_a_near_quality():
    # A camera-like table: libjpeg's q90 table with every other entry nudged.
    table = [int(v) + (i % 2) for i, v in enumerate(quant.scaled_table(quant.STD_LUMA, 90))]
    est = quant.estimate(tuple(table))
    assert not est.standard and 85 <= est.quality <= 95
    assert quant.estimate(None).quality == 0
