"""What the benchmarks share: a fleet of stopped, tagged instances and the emulator's keys."""

CRED = {"AccessKeyId": "STS.benchAccessKeyId", "AccessKeySecret": "benchSecret", "SecurityToken": "benchToken"}
IMAGE = "aliyun_3_x64_20G_alibase_20260101.vhd"


def fleet_seed(n: int, prefix: str, tags: dict) -> dict:
    """n stopped Linux instances `i-<prefix>NNN`, each with a system disk `d-<prefix>NNN`."""
    return {
        "region": "cn-hangzhou", "credentials": [CRED], "topics": ["reinit-results"],
        "images": [{"ImageId": IMAGE, "OSType": "linux"}],
        "instances": [{"InstanceId": f"i-{prefix}{k:012d}", "Status": "Stopped", "ImageId": IMAGE} for k in range(n)],
        "disks": [{"DiskId": f"d-{prefix}{k:012d}", "InstanceId": f"i-{prefix}{k:012d}", "Type": "system",
                   "ImageId": IMAGE, "Tags": dict(tags)} for k in range(n)],
    }
