"""A deterministic synthetic market: vendors, apps, brokers, investors, devices, subscribers.

`build_market(config)` depends only on the seed and the sizes, so a test can rebuild the
same market and know exactly what was planted (shared devices, shared public IPs,
investors without trading codes, unauthorized apps). Reference data is emitted in the
shape of the lookthrough.* reference schemas.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

EXCHANGES = ("SHFE", "INE", "DCE", "CZCE", "CFFEX", "GFEX")
TERMINAL_MIX = ((1, 0.55), (2, 0.08), (3, 0.07), (4, 0.15), (5, 0.09), (6, 0.04), (7, 0.02))
VENDORS = (("CTP", "上期技术 CTP"), ("ESUNNY", "易盛 Esunny"), ("HUNDSUN", "恒生 Hundsun"),
           ("KINGSTAR", "金仕达 KingStar"), ("APEX", "顶点 Apex"))  # fmt: skip


@dataclass(frozen=True)
class MarketConfig:
    """Sizes of the synthetic market; everything else follows from `seed`."""

    seed: int = 20190614
    futures_companies: int = 6
    investors_per_broker: int = 60
    exchange_reporter: str = "SHFE"
    exchange_members: int = 2
    shared_device_groups: int = 8
    max_sharing: int = 5
    multi_device_share: float = 0.15
    shared_ip_groups: int = 6
    no_code_share: float = 0.03
    epoch_ms: int = 1_763_600_000_000  # a fixed day so runs are reproducible


@dataclass
class Device:
    device_key: str
    terminal_type: int
    hardware: dict[str, str]
    macs: list[str]
    private_ips: list[str]


@dataclass
class Investor:
    reporter_id: str
    reporter_type: str
    broker_id: str
    investor_id: str
    user_id: str
    trading_codes: dict[str, str]
    devices: list[str]
    public_ip: str


@dataclass
class App:
    app_id: str
    vendor_id: str
    app_type: int
    authorized_brokers: list[str]
    registered: bool = True


@dataclass
class Market:
    config: MarketConfig
    vendors: list[tuple[str, str]]
    apps: list[App]
    brokers: list[dict[str, str]]
    investors: list[Investor]
    devices: dict[str, Device]
    subscribers: list[dict[str, Any]]
    shared_devices: dict[str, list[str]] = field(default_factory=dict)
    shared_ips: dict[str, list[str]] = field(default_factory=dict)

    def investor_key(self, investor: Investor) -> str:
        return f"{investor.broker_id}:{investor.investor_id}"

    def reference_data(self) -> dict[str, list[dict[str, Any]]]:
        """Reference records per kind, shaped like the lookthrough.* reference schemas."""
        now = self.config.epoch_ms
        return {
            "vendors": [
                {"vendor_id": vid, "name": name, "status": "active", "updated_at": now}
                for vid, name in self.vendors
            ],
            "apps": [
                {
                    "app_id": app.app_id,
                    "vendor_id": app.vendor_id,
                    "app_type": app.app_type,
                    "name": app.app_id.split("_")[1],
                    "version": app.app_id.rsplit("_", 1)[-1],
                    "authorized_brokers": sorted(app.authorized_brokers),
                    "is_relay": app.app_type in (2, 3),
                    "updated_at": now,
                }
                for app in self.apps
                if app.registered
            ],
            "brokers": [{**b, "updated_at": now} for b in self.brokers],
            "accounts": [
                {
                    "broker_id": inv.broker_id,
                    "investor_id": inv.investor_id,
                    "trading_codes": dict(inv.trading_codes),
                    "updated_at": now,
                }
                for inv in self.investors
            ],
            "subscribers": self.subscribers,
        }


def _serial(rng: random.Random, prefix: str, length: int) -> str:
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"
    return prefix + "".join(rng.choice(alphabet) for _ in range(length))


def _mac(rng: random.Random) -> str:
    return "".join(f"{rng.randrange(256):02X}" for _ in range(6)).replace("0", "1", 1)


def _public_ip(rng: random.Random) -> str:
    # Blocks that are globally routable (ipaddress.is_global) in mainland-China space.
    first = rng.choice((58, 59, 60, 61, 110, 111, 113, 114, 116, 117, 119, 120, 121, 122, 123, 124, 125, 180, 183, 202, 210, 218, 219, 220, 221, 222, 223))  # noqa: E501
    return f"{first}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"


def _device(rng: random.Random, index: int) -> Device:
    roll, acc = rng.random(), 0.0
    terminal_type = 1
    for code, weight in TERMINAL_MIX:
        acc += weight
        if roll < acc:
            terminal_type = code
            break
    hardware: dict[str, str]
    if terminal_type in (1, 2, 3):
        hardware = {
            "device_name": f"DESKTOP-{_serial(rng, '', 7)}",
            "os_version": {1: "Windows 10 Pro 22H2", 2: "Ubuntu 22.04.4 LTS", 3: "macOS 14.5"}[terminal_type],
            "disk_serial": _serial(rng, "WD-WX", 12),
            "cpu_serial": _serial(rng, "BFEBFBFF", 8),
        }
        hardware["bios_serial" if terminal_type != 3 else "device_serial"] = _serial(rng, "C02", 9)
        if terminal_type == 1:
            hardware["system_disk_partition"] = f"C:^{_serial(rng, '', 8)}^NTFS^{rng.choice((128, 256, 512))}G"
    elif terminal_type == 7:
        hardware = {"platform": rng.choice(("wechat-miniprogram", "web")), "device_model": "iPhone15,2",
                    "os_version": "iOS 17.5", "device_id": _serial(rng, "wx-", 16)}  # fmt: skip
    else:
        hardware = {
            "device_model": rng.choice(("Mi 14", "HUAWEI Mate 60", "iPhone 15", "OPPO Find X7")),
            "os_version": {4: "Android 14", 5: "iOS 17.5", 6: "HarmonyOS 4.2"}[terminal_type],
            "phone": f"1{rng.choice((3, 5, 8))}{rng.randrange(10**9):09d}",
        }
        if terminal_type == 4:
            hardware["imei"] = f"86{rng.randrange(10**13):013d}"
            hardware["device_id"] = _serial(rng, "", 16).lower()
        elif terminal_type == 5:
            hardware["idfv"] = _serial(rng, "", 32)
        else:
            hardware["device_id"] = _serial(rng, "ODID", 28)
    pc = terminal_type in (1, 2, 3)
    macs = [_mac(rng) for _ in range(2 if pc and rng.random() < 0.3 else 1)] if terminal_type != 7 else []
    private_ips = [f"192.168.{rng.randrange(256)}.{rng.randrange(2, 254)}"] if terminal_type != 7 else []
    return Device(f"D{index:06d}", terminal_type, hardware, macs, private_ips)


def build_market(config: MarketConfig) -> Market:
    """Build the whole population deterministically from `config.seed`."""
    rng = random.Random(config.seed)
    brokers = [
        {"broker_id": f"{(i + 1) * 101:04d}", "name": f"期货公司 {i + 1}", "kind": "FUTURES_COMPANY"}
        for i in range(config.futures_companies)
    ]
    members = [
        {"broker_id": f"M{config.exchange_reporter[:2]}{i + 1:02d}", "name": f"非期货公司会员 {i + 1}",
         "kind": "EXCHANGE_MEMBER"}
        for i in range(config.exchange_members)
    ]  # fmt: skip
    all_brokers = brokers + members
    broker_ids = [b["broker_id"] for b in all_brokers]

    apps: list[App] = []
    for vendor_id, _ in VENDORS:
        tag = vendor_id[:2]
        apps.append(App(f"{tag}_Q7_V1.0.0", vendor_id, 1, list(broker_ids)))
        apps.append(App(f"{tag}_PRO_V2.3.1", vendor_id, 1, list(broker_ids)))
        apps.append(App(f"{tag}_RELAY_V1.0.0", vendor_id, 2, list(broker_ids)))
        apps.append(App(f"{tag}_RELAYB_V1.0.0", vendor_id, 3, list(broker_ids)))
    # Planted for W402 / W403: an app nobody registered, and one authorized for one broker only.
    apps.append(App("ZZ_GHOST_V0.1", "CTP", 1, [], registered=False))
    apps.append(App("CT_NARROW_V1.0", "CTP", 1, [broker_ids[0]]))

    investors: list[Investor] = []
    devices: dict[str, Device] = {}
    for broker in all_brokers:
        is_member = broker["kind"] == "EXCHANGE_MEMBER"
        reporter_id = config.exchange_reporter if is_member else broker["broker_id"]
        for j in range(config.investors_per_broker):
            investor_id = f"{rng.randrange(10**8):08d}{j:04d}"[-12:]
            codes: dict[str, str] = {}
            if rng.random() >= config.no_code_share:
                chosen = [config.exchange_reporter] if is_member else rng.sample(EXCHANGES, rng.randint(1, 3))
                codes = {ex: f"{rng.randrange(10**8):08d}" for ex in sorted(chosen)}
            device = _device(rng, len(devices))
            devices[device.device_key] = device
            own = [device.device_key]
            if rng.random() < config.multi_device_share:
                extra = _device(rng, len(devices))
                devices[extra.device_key] = extra
                own.append(extra.device_key)
            investors.append(Investor(reporter_id, "EXCHANGE" if is_member else "FUTURES_COMPANY",
                                      broker["broker_id"], investor_id, investor_id, codes, own,
                                      _public_ip(rng)))  # fmt: skip

    market = Market(config, list(VENDORS), apps, all_brokers, investors, devices, [])
    # 一机多户: a device shared by 2..max_sharing investors, across brokers.
    for _ in range(config.shared_device_groups):
        sharers = rng.sample(investors, rng.randint(2, config.max_sharing))
        device = _device_of_type(rng, len(devices), rng.choice((1, 1, 2, 4, 5)))
        devices[device.device_key] = device
        for inv in sharers:
            inv.devices.append(device.device_key)
        market.shared_devices[device.device_key] = sorted(market.investor_key(i) for i in sharers)
    # Shared public IPs: one office NAT behind several investors.
    for _ in range(config.shared_ip_groups):
        sharers = rng.sample(investors, rng.randint(2, config.max_sharing))
        address = _public_ip(rng)
        for inv in sharers:
            inv.public_ip = address
    for inv in investors:
        market.shared_ips.setdefault(inv.public_ip, []).append(market.investor_key(inv))
    market.shared_ips = {ip: sorted(v) for ip, v in market.shared_ips.items() if len(set(v)) > 1}

    market.subscribers = [
        {
            "subscriber_id": f"{ex}-DATA", "exchange": ex, "licence_no": f"LIC-{ex}-2019",
            "licensed": ex != "GFEX",  # one exchange without a licence: routed nothing
            "tier": "full", "valid_from": config.epoch_ms - 86_400_000 * 365, "valid_to": None,
            "updated_at": config.epoch_ms,
        }
        for ex in EXCHANGES
    ]  # fmt: skip
    return market


def _device_of_type(rng: random.Random, index: int, terminal_type: int) -> Device:
    while True:
        device = _device(rng, index)
        if device.terminal_type == terminal_type:
            return device
