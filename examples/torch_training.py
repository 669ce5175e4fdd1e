"""A small PyTorch training loop: per-step loss curves, deterministic seeds, a checkpoint.

A two-layer network learns y = sin(3x) + noise, swept over the learning rate, with
seeded replicates. Each run

- seeds random, NumPy and torch from its SeedBundle with
  ``metalab.seed_everything(seeds, deterministic=True)``, so the weights it starts
  from and every number after are the same on each run of this script;
- draws its data from its own generator, ``seeds.torch("data")``;
- logs the training loss at every step (``capture.metric(..., step=...)``) and the
  validation loss at the end;
- saves its trained weights, ``checkpoint.pt``, as an artifact.

    python examples/torch_training.py                          # 3 rates x 3 seeds x 300 steps
    METALAB_EXAMPLE_SMALL=1 python examples/torch_training.py  # 2 x 2 x 30, for tests

It prints one line per run and writes ``torch_loss.png`` (mean loss curve per learning
rate, with its 95% band). Load a checkpoint back with::

    run = metalab.load_results("runs/torch_training")[0]
    model = make_model(run.params["hidden"])
    model.load_state_dict(torch.load(run.artifact("checkpoint.pt")))
"""

import os

import metalab

SMALL = os.environ.get("METALAB_EXAMPLE_SMALL") == "1"


def make_model(hidden):
    """Return the network: 1 input, ``hidden`` tanh units, 1 output."""
    import torch

    return torch.nn.Sequential(
        torch.nn.Linear(1, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, 1)
    )


def make_data(seeds, n=256):
    """Return (x_train, y_train, x_val, y_val): noisy samples of sin(3x), from ``seeds``."""
    import torch

    generator = seeds.torch("data")
    x = torch.rand(2 * n, 1, generator=generator) * 2 - 1
    y = torch.sin(3 * x) + 0.1 * torch.randn(2 * n, 1, generator=generator)
    return x[:n], y[:n], x[n:], y[n:]


def fit(params, seeds, capture, device="cpu"):
    """Train the network with Adam at ``params["lr"]`` on ``device``; return it.

    Captures the loss curve (``train_loss`` per step) and the final ``val_loss``.
    """
    import torch

    metalab.seed_everything(seeds, deterministic=True)  # the initial weights come from torch
    where = torch.device(device)
    # Made on the CPU and then moved: the same initial weights on every device.
    model = make_model(params["hidden"]).to(where)
    x_train, y_train, x_val, y_val = (t.to(where) for t in make_data(seeds))
    optimiser = torch.optim.Adam(model.parameters(), lr=params["lr"])
    for step in range(params["steps"]):
        optimiser.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x_train), y_train)
        loss.backward()
        optimiser.step()
        capture.metric("train_loss", loss.item(), step=step)
    with torch.no_grad():
        capture.metric("val_loss", torch.nn.functional.mse_loss(model(x_val), y_val).item())
    return model


@metalab.operation(name="torch_training", version="1")
def train(params, seeds, capture, runtime):
    """Train the network; keep its loss curve and weights."""
    import torch

    model = fit(params, seeds, capture)
    # Files left at the top of runtime.output_dir become the run's artifacts.
    torch.save(model.state_dict(), runtime.output_dir / "checkpoint.pt")


exp = metalab.Experiment(
    name="torch_training",
    version="1",
    operation=train,
    params=metalab.grid(
        lr=[0.01, 0.05] if SMALL else [0.003, 0.01, 0.05],
        hidden=[16],
        steps=[30 if SMALL else 300],
    ),
    seeds=metalab.seeds(base=7, replicates=2 if SMALL else 3),
)

if __name__ == "__main__":
    result = metalab.run(exp)  # ./runs/torch_training
    for run in result:
        print(
            f"{run.run_id[:12]} lr={run.params['lr']} replicate={run.seeds.replicate_index}: "
            f"val_loss {run.metrics['val_loss']:.6f}"
        )
    result.plot_steps("train_loss", hue="lr").savefig("torch_loss.png")
