"""Training many members at once: the self-contained task a runner plugin executes, and the batch entry point.

``train_members(context, workspace, member_ids, runner)`` trains the members of one run that are not
already trained from their current inputs; ``runner.train(tasks, follower)`` trains any list of
``MemberTask`` (several runs' members included) wherever the runner puts them.
"""
