"""The learning-rate schedule and the time budget that fits its cool-down into the minutes given."""
import pytest

from gouache.training.config import TrainConfig
from gouache.training.lr_schedule import TimeBudget, lr_at


def test_lr_warms_up_holds_then_cools_down_to_zero():
    cfg = TrainConfig(lr=1e-3, warmup=10, steps=100, cooldown=20)
    lrs = [lr_at(s, cfg) for s in range(100)]
    assert lrs[0] == pytest.approx(1e-4) and lrs[9] == pytest.approx(1e-3)
    assert all(lr == pytest.approx(1e-3) for lr in lrs[9:80])
    cool = lrs[80:]
    assert all(a > b for a, b in zip(cool, cool[1:])) and cool[-1] == pytest.approx(1e-3 / 20)
    # resuming past the end (a longer `steps` is the way to go on) never gives a negative rate
    assert lr_at(150, cfg) == 0.0
    assert lr_at(50, TrainConfig(lr=1e-3, warmup=10, steps=100)) == pytest.approx(1e-3)


def test_time_budget_shortens_the_schedule_to_cool_down_in_time():
    cfg = TrainConfig(steps=1000, warmup=10, cooldown=200, max_minutes=1.0)  # 57 s, less the margin
    budget = TimeBudget(cfg, first_step=0)
    assert not budget.update(5, elapsed=5.0)  # the pace is measured from here: compiling left out
    assert not budget.update(10, elapsed=5.25)  # 0.05 s a step: all 1,000 fit (never more than planned)
    assert budget.update(20, elapsed=14.0)  # 0.6 s a step, 43 s left: 71 more steps
    assert (cfg.steps, cfg.cooldown) == (91, 18)
    assert budget.update(70, elapsed=16.0)  # faster again (0.17 s a step since step 5): 242 more
    assert (cfg.steps, cfg.cooldown) == (312, 62)
    assert budget.update(240, elapsed=50.0)  # 0.19 s a step, 7 s left: 36 more
    assert (cfg.steps, cfg.cooldown) == (276, 55) and cfg.steps - cfg.cooldown < 240  # cooling down
    assert lr_at(275, cfg) == pytest.approx(cfg.lr / 55)  # the last step's rate: almost 0
    assert not budget.update(250, elapsed=56.0) and cfg.steps == 276  # from now on the schedule is fixed
    for fixed in (TrainConfig(steps=1000, cooldown=200), TrainConfig(steps=1000, max_minutes=1.0)):
        budget = TimeBudget(fixed, first_step=0)
        assert not any(budget.update(s, elapsed=s * 10.0) for s in (5, 10, 20))  # no budget or no cool-down
        assert fixed.steps == 1000
