"""Language-model alignment: SFT, reward models, PPO-RLHF, DPO."""
