"""A generated county for benchmarks: N villages in townships of 100, with markets and campaigns."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
TRAFFIC = ["traffic-helmet", "traffic-tricycle-passengers", "traffic-drunk-driving", "traffic-night-travel",
           "traffic-ebike", "traffic-children-elderly", "traffic-mixed-load"]
FRAUD = ["fraud-96110", "fraud-three-no-one-more", "fraud-antifraud-app", "fraud-12381-sms",
         "fraud-phone-card-check", "fraud-bank-card-check"]
LUNAR_PAIRS = ["一、六", "二、七", "三、八", "四、九", "五、十"]


def make_workspace(dest: Path, villages: int, *, mode: str = "export", seed: int = 7) -> Path:
    """Write a workspace with `villages` villages; reuse the sample's scripts and rendered clips."""
    rng = random.Random(seed)
    dest.mkdir(parents=True)
    shutil.copytree(ROOT / "audio_scripts", dest / "audio_scripts")
    toml = (ROOT / "outreach.toml").read_text(encoding="utf-8").replace('mode = "play"', f'mode = "{mode}"')
    (dest / "outreach.toml").write_text(toml, encoding="utf-8")
    if (ROOT / "build" / "clips").is_dir():
        shutil.copytree(ROOT / "build" / "clips", dest / "build" / "clips")
    n_towns = max(1, villages // 100)
    towns = [{"id": f"t{t:02d}", "name": f"第{t + 1}镇"} for t in range(n_towns)]
    vills = [{"id": f"t{i % n_towns:02d}-v{i:04d}", "name": f"{i}号村", "township": f"t{i % n_towns:02d}",
              "population": rng.randint(300, 3000), "speaker": rng.choice(["networked", "offline"])}
             for i in range(villages)]
    markets = [{"id": f"m{t:02d}", "name": f"第{t + 1}镇集", "rule": f"逢农历{LUNAR_PAIRS[t % 5]}",
                "townships": [f"t{t:02d}"]} for t in range(n_towns)]
    schedules = dest / "schedules"
    schedules.mkdir()
    dump = lambda name, data: (schedules / name).write_text(  # noqa: E731
        yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    dump("county.yaml", {"county": "基准县", "townships": towns, "villages": vills})
    dump("markets.yaml", {"markets": markets})
    dump("slots.yaml", {"slots": {"morning": {"start": "06:30", "max_minutes": 10},
                                  "evening": {"start": "18:30", "max_minutes": 10}}, "blackouts": []})
    half = [t["id"] for t in towns[: max(1, n_towns // 2)]]
    dump("campaigns.yaml", {"campaigns": [
        {"id": "traffic", "name": "交通安全", "scripts": TRAFFIC, "from": "2026-01-01", "to": "2027-12-31",
         "targets": {"county": True}, "plays_per_slot": 1, "priority": 6},
        {"id": "fraud", "name": "反诈进村", "scripts": FRAUD, "from": "2026-01-01", "to": "2027-12-31",
         "targets": {"townships": half}, "plays_per_slot": 1, "priority": 7},
        {"id": "market", "name": "赶集平安", "scripts": ["traffic-market-day"], "from": "2026-01-01",
         "to": "2027-12-31", "targets": {"markets": [m["id"] for m in markets]}, "priority": 5,
         "market_day_boost": 1},
        {"id": "always-on", "name": "常态宣传", "scripts": ["traffic-helmet", "fraud-96110"], "from": "2026-01-01",
         "to": "2027-12-31", "targets": {"county": True}, "default": True},
    ]})
    return dest
