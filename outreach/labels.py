"""Chinese labels for the closed sets users see (statuses, slots, topics, roles), on pages and in the CLI."""

from __future__ import annotations

STATUS = {
    "planned": "待播",
    "played": "已播",
    "exported": "已导出",
    "confirmed": "已确认",
    "missed": "漏播",
    "failed": "失败",
    "interrupted": "中断",
}
EVIDENCE = {
    "none": "无证据",
    "exported": "已导出待确认",
    "player": "仅有播放记录",
    "heard": "已监听",
    "confirmed": "已确认",
}
"""How we know a program aired (models.Evidence): exported is not reached, it awaits a confirmation."""
SLOT = {"morning": "早间", "evening": "晚间"}
TOPIC = {"traffic": "交通安全", "anti_fraud": "反诈骗"}
ROLE = {"viewer": "查看员", "editor": "编辑员", "reviewer": "审核员", "admin": "管理员"}
SCRIPT_STATUS = {"draft": "草稿", "approved": "已批准", "edited": "批准后被修改"}
SCRIPT_EVENT = {"drafted": "拟稿", "edited": "修改", "recorded": "上传录音", "previewed": "试听", "approved": "签发",
                "rejected": "退回"}
SPEAKER = {"networked": "联网播放", "station": "村广播站（断网续播）", "offline": "U盘离线"}
WEEKDAY = "一二三四五六日"


def label(table: dict[str, str], value: object) -> str:
    """The Chinese label of `value`, or the value itself when it has none."""
    key = str(getattr(value, "value", value))
    return table.get(key, key)
