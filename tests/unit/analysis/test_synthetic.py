"""The synthetic generators produce the structure they promise."""

import numpy as np
import pandas as pd

from lnds_spe.analysis.synthetic import (
    LUXEMBOURG_LAT,
    LUXEMBOURG_LON,
    census_microdata,
    grid_cells,
    groupby_table,
    meteo_network,
)


def test_meteo_network_shape_missing_values_and_seasons():
    net = meteo_network(n_stations=6, years=1.0, n_measurements=2, cadence_s=3600, seed=1)
    assert LUXEMBOURG_LON[0] <= net.station_lon.min() <= net.station_lon.max() <= 6.53
    assert LUXEMBOURG_LAT[0] <= net.station_lat.min() <= net.station_lat.max() <= 50.19
    assert np.all(np.diff(net.times) >= 0)
    full = 8760 * 12
    assert full - 14 * 24 * 2 * 6 <= net.times.size <= full
    assert 0.002 < np.isnan(net.values).mean() < 0.01
    frame = pd.DataFrame({"t": pd.to_datetime(net.times, unit="s"), "s": net.series,
                          "v": net.values})
    temp = frame[frame.s.isin(net.series_of("temperature_c"))]
    monthly = temp.groupby(temp.t.dt.month)["v"].mean()
    assert monthly[7] - monthly[1] > 10  # summer is warmer than winter
    hourly = temp.groupby(temp.t.dt.hour)["v"].mean()
    assert hourly[15] - hourly[3] > 4  # afternoons are warmer than nights


def test_meteo_is_deterministic():
    a = meteo_network(n_stations=3, years=0.05, seed=7)
    b = meteo_network(n_stations=3, years=0.05, seed=7)
    np.testing.assert_array_equal(a.values, b.values)


def test_grid_cells_and_tables():
    lon, lat = grid_cells(1524)
    assert lon.shape == lat.shape == (1524,)
    table = groupby_table(10_000, seed=2)
    assert table["id_100"].max() < 100 and table["id_1m"].max() < 1_000_000
    census = census_microdata(200_000, seed=3)
    counts = pd.Series(census["region"]).value_counts()
    assert counts.max() > 5 * counts.min()  # Zipf-skewed regions
    income = census["income"]
    assert income.max() > 50 * np.median(income)  # dominant contributors
