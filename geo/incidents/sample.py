"""Realistic generated incidents for the sample and for benchmarks.

Categories follow rough hotline shares; reports follow a daily rhythm (morning and afternoon
peaks, noise in the evening); a share of them cluster around hot spots (old open blocks,
markets, a few troubled compounds); some fall outside every unit. Older reports are mostly
closed, with resolution times spread around each category's deadline.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from geo.locate.locator import Locator

CATEGORIES = {  # share of reports, deadline hours
    "garbage": (0.22, 24), "noise": (0.14, 24), "parking": (0.14, 24), "road_damage": (0.10, 48),
    "street_light": (0.08, 48), "water_leak": (0.07, 12), "manhole": (0.05, 24), "dispute": (0.08, 72),
    "illegal_building": (0.04, 168), "fire_hazard": (0.03, 12), "other": (0.05, 72),
}
HOURS = np.array([1, 0.6, 0.4, 0.3, 0.3, 0.5, 1.5, 3, 5, 7, 7, 6, 4, 4, 5, 6, 6, 5, 5, 6, 6, 5, 3, 2], float)
CHANNELS = (("hotline", 0.45), ("wechat", 0.30), ("patrol", 0.15), ("rider", 0.05), ("app", 0.05))


def generate(locator: Locator, n: int, start: datetime, end: datetime, seed: int = 1) -> dict[str, np.ndarray]:
    """n incidents between start and end, as columns (positions in WGS84)."""
    rng = np.random.default_rng(seed)
    start = start.astimezone(UTC).replace(tzinfo=None)  # numpy keeps naive UTC times
    end = end.astimezone(UTC).replace(tzinfo=None)
    codes = np.array(list(CATEGORIES))
    share = np.array([v[0] for v in CATEGORIES.values()])
    hours_by_code = {k: v[1] for k, v in CATEGORIES.items()}
    category = codes[rng.choice(len(codes), n, p=share / share.sum())]
    # when: a day of the window, an hour of Beijing time (UTC+8) by the daily rhythm
    first_midnight = (start + timedelta(hours=8)).replace(hour=0, minute=0, second=0, microsecond=0) \
        - timedelta(hours=8)
    days = max(1, (end - first_midnight).days + 1)
    day = rng.integers(0, days, n)
    hour = rng.choice(24, n, p=HOURS / HOURS.sum())
    seconds = day * 86400 + hour * 3600 + rng.integers(0, 3600, n)
    reported = np.array(first_midnight, dtype="datetime64[us]") + seconds.astype("timedelta64[s]")
    # times that fall outside the window fold back into it, keeping their hour of day
    over = reported >= np.datetime64(end, "us")
    reported[over] -= np.timedelta64(days, "D")
    under = reported < np.datetime64(start, "us")
    reported[under] += np.timedelta64(1, "D")
    reported = np.minimum(reported, np.datetime64(end, "us") - np.timedelta64(1, "s"))
    # where: around hot spots or anywhere in the district (and a little beyond)
    grid = locator.indexes["grid"]
    bbox = grid.bbox[~np.isnan(grid.bbox[:, 0])]
    minx, miny = bbox[:, 0].min(), bbox[:, 1].min()
    maxx, maxy = bbox[:, 2].max(), bbox[:, 3].max()
    spots = rng.integers(0, len(bbox), 40)
    spot_x = (bbox[spots, 0] + bbox[spots, 2]) / 2
    spot_y = (bbox[spots, 1] + bbox[spots, 3]) / 2
    hot = rng.random(n) < 0.45
    which = rng.integers(0, len(spots), n)
    x = np.where(hot, spot_x[which] + rng.normal(0, 0.0006, n), rng.uniform(minx - 0.002, maxx + 0.002, n))
    y = np.where(hot, spot_y[which] + rng.normal(0, 0.0005, n), rng.uniform(miny - 0.002, maxy + 0.002, n))
    # how it went: older ones mostly closed; resolution around the deadline
    deadline_h = np.array([hours_by_code[c] for c in category])
    age_h = (np.datetime64(end, "us") - reported).astype("timedelta64[s]").astype(float) / 3600
    took_h = deadline_h * rng.lognormal(-0.5, 0.7, n)
    finished = took_h < age_h
    state = np.where(finished, np.where(rng.random(n) < 0.8, "closed", "resolved"),
                     np.where(rng.random(n) < 0.5, "in_progress", "assigned"))
    dropped = rng.random(n) < 0.04
    state = np.where(dropped, np.where(rng.random(n) < 0.5, "rejected", "duplicate"), state)
    channel_names = np.array([c for c, _ in CHANNELS])
    channel_share = np.array([s for _, s in CHANNELS])
    return {
        "category": category, "reported_at": reported, "lon": x, "lat": y, "state": state,
        "deadline": reported + (deadline_h * 3600).astype("timedelta64[s]"),
        "resolved_at": np.where(np.isin(state, ["resolved", "closed"]),
                                reported + (took_h * 3600).astype("timedelta64[s]"), np.datetime64("NaT")),
        "channel": channel_names[rng.choice(len(channel_names), n, p=channel_share)],
    }


_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢"
_GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰红梅琳建国志新春海燕云飞鹏辉波宁"


def worker_names(n: int, seed: int = 1) -> list[str]:
    """n plausible Chinese names (a surname and one or two given characters), for a sample's workers."""
    rng = np.random.default_rng(seed)
    names = []
    for _ in range(n):
        given = "".join(rng.choice(list(_GIVEN), int(rng.integers(1, 3))))
        names.append(str(rng.choice(list(_SURNAMES))) + given)
    return names


def window_for_year(end: datetime) -> tuple[datetime, datetime]:
    return end - timedelta(days=365), end
