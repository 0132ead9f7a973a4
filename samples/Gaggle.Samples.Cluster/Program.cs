System.Console.WriteLine("demo");
