"""Learning from judgements: Bradley-Terry, Plackett-Luce, winners and dueling bandits, trajectory
preference reward models, TAMER. Submodules are imported on demand (``from irlhf.preference import
bradley_terry``)."""
