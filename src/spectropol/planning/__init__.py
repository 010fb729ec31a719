"""Planning: what the workflow will do, as a pure function of the config and a description of the
input, ``plan(config, observation) -> Plan``.

- observation: what the input Measurement Sets hold (``observe``, from small subtables only) and
  the refusals that can be made before any job runs;
- blocks: channel lists, blocks of channels per job, and the automatic block size;
- plan: the Plan, with the settings of each channel, the options of every stage, the product paths
  and the resources of every rule.
"""

from .blocks import block_label, channel_settings, channel_width, parse_channel_ranges, plan_blocks
from .observation import ChannelSource, Observation, PlanError, observe
from .plan import Plan, check_output_folder, plan

__all__ = ["ChannelSource", "Observation", "Plan", "PlanError", "block_label", "channel_settings", "channel_width",
           "check_output_folder", "observe", "parse_channel_ranges", "plan", "plan_blocks"]
