"""Non-generation routes: tasks, account, prices, skills, admin."""
