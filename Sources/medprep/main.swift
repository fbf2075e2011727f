import MedprepCommands
Medprep.main()
