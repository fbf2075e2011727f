import MedprepCommands
Medprep.runMain()
